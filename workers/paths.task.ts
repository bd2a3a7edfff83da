/**
 * piscina task entry: k shortest paths to all destinations (see
 * src/routing/path-task.ts). Thin by design: no logic here. Loaded from
 * the built file dist/workers/paths.task.js (Node 20 cannot load .ts workers).
 */
import { runPathsTask } from '../src/routing/path-task.js'

export default runPathsTask
