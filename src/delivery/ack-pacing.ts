/**
 * When a reliable stream's ACK goes at once rather than waiting (up to
 * PeerActor ACK_DELAY_MS) for traffic to ride on. Both ends decide:
 *
 * - The receiver asks its IO worker for a prompt ACK once the application
 *   has taken {@link ackEagerBytes} since the last one. Each prompt ACK costs
 *   a wake-up of the receiver's IO worker, a WebSocket message and a wake-up
 *   of the sender's IO worker. (Under a flood the worker already folds
 *   several prompts into one ACK: with 16 KiB instead, a 64 KiB flood sent
 *   one WebSocket message back per 10 received, with 256 KiB one per 13; the
 *   flood's rate moved within the noise.)
 * - The sender's queue keeps every record until it is acknowledged, so a
 *   small queue cannot wait for the receiver's threshold: the sender flags a
 *   frame ACK_REQUESTED once it has queued a quarter of its queue since it
 *   last asked ({@link asksForAck}). Without that, a 64 KiB queue ran in
 *   steps of the ACK timer (two-process flood: 16 KiB messages 275/s against
 *   6,100-6,900/s, 1 KiB messages 5,700-6,200/s against 108,000-127,000/s).
 *
 * @module
 */

/** The receiver's prompt-ACK threshold, at most (bytes of frames the application took). */
export const ACK_EAGER_MAX_BYTES = 256 * 1024

/** A sender asks for a prompt ACK each 1/ACK_ASK_DIVISOR of its send queue. */
export const ACK_ASK_DIVISOR = 4

/**
 * Prompt-ACK threshold of a receiver that grants a sender up to
 * `windowBytes` of credit: at most a quarter of it, so the credit is renewed
 * well before it runs out; at most {@link ACK_EAGER_MAX_BYTES}.
 */
export function ackEagerBytes (windowBytes: number): number {
  return Math.max(1, Math.min(ACK_EAGER_MAX_BYTES, Math.floor(windowBytes / 4)))
}

/**
 * Whether a record of `bytes`, queued after `unaskedBytes` were queued since
 * the sender last asked, asks for a prompt ACK: it brings them to
 * 1/{@link ACK_ASK_DIVISOR} of a send queue of `queueBytes`.
 */
export function asksForAck (unaskedBytes: number, bytes: number, queueBytes: number): boolean {
  return unaskedBytes + bytes >= queueBytes / ACK_ASK_DIVISOR
}
