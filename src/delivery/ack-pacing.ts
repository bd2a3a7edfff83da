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

/**
 * …when the frames taken include bulk-lane ones: half of what a bulk-lane
 * sender may have in flight on a fast link (PeerActor BULK_MIN_CREDIT_BYTES),
 * so the next ACK is on its way before that runs out (at the whole of it the
 * sender stopped for every ACK; below the threshold it waited for the ACK
 * timer: 22 MiB/s). Not for the priority lane: there it cost throughput
 * (64 KiB flood at 128 KiB, 2 runs each: 0.22-0.26 of raw ws against
 * 0.28-0.29).
 */
export const ACK_EAGER_BULK_MAX_BYTES = 64 * 1024

/** A sender asks for a prompt ACK each 1/ACK_ASK_DIVISOR of its send queue. */
export const ACK_ASK_DIVISOR = 4

/**
 * Prompt-ACK threshold of a receiver that grants a sender up to
 * `windowBytes` of credit: at most a quarter of it, so the credit is renewed
 * well before it runs out; at most {@link ACK_EAGER_MAX_BYTES}, or
 * {@link ACK_EAGER_BULK_MAX_BYTES} when `bulk` frames were among those taken.
 */
export function ackEagerBytes (windowBytes: number, bulk = false): number {
  return Math.max(1, Math.min(bulk ? ACK_EAGER_BULK_MAX_BYTES : ACK_EAGER_MAX_BYTES, Math.floor(windowBytes / 4)))
}

/**
 * Whether a record of `bytes`, queued after `unaskedBytes` were queued since
 * the sender last asked, asks for a prompt ACK: it brings them to
 * 1/{@link ACK_ASK_DIVISOR} of a send queue of `queueBytes`.
 */
export function asksForAck (unaskedBytes: number, bytes: number, queueBytes: number): boolean {
  return unaskedBytes + bytes >= queueBytes / ACK_ASK_DIVISOR
}
