/**
 * Private: how many socket writes this process's connections start per
 * turn of Deno's event loop, and the writes that wait for the next turn.
 *
 * Deno polls an op once as it starts ("eager"), on the event loop's own
 * tokio task, whose cooperative budget is 128 resource polls per poll of
 * that task (tokio::runtime::coop). An op started past the budget is
 * handed on unpolled, and beside busy connections it waited for as long
 * as the load lasted (bench/op_starvation.ts: of 800 writes started in one
 * turn beside 300 busy pairs, 128 or 256 went at once, the rest after 0.4
 * to 19 s). 1,000 connections flushing in one microtask (`deno task soak`)
 * had one write wait past sendTimeout, which failed a healthy connection.
 * So a socket write starts only while fewer than `PER_TURN` have started
 * in this turn; the others wait, in order.
 *
 * JavaScript cannot see a turn end, and a timer set to mark each one costs
 * a timer hop per turn (1 to 2.5 ms here; with one, `bench/e2e/ab.ts` at
 * 100 × 32 B lost 65%) and is left pending by a finished test. But two
 * things are known:
 * - The microtask queue is empty between turns. A microtask clock ticks
 *   for CLOCK_SPAN microtasks after each op starts, then stops: each turn
 *   ends at a stop (and some stops come within a turn).
 * - An op that settles late (not within the few microtasks of an eager
 *   poll) was settled by the event loop in a later turn than the one it
 *   started in.
 * So when an op settles late (a write, or a connection's read), this turn
 * began at or after the clock's first stop after that op started: the
 * writes started since that stop are an upper bound on those that share
 * this turn's budget. A 0 ms timer, set only while a write waits and cleared
 * when none does, resumes the waiting ones when no op settles late: it
 * runs in a later turn than the one it was set in.
 *
 * @module
 */

// Socket writes started per turn, of tokio's 128 polls, before the next
// waits: the rest is left to the reads the connections restart and to the
// application's own I/O. The full soak passed with 100.
const PER_TURN = 100;
// Microtasks within which an eager op settles: measured, a write to an
// idle socket and a read of waiting bytes (Deno.Conn) settled after 2; one
// still pending after 4 waited for the event loop.
const EAGER_WINDOW = 4;
// Microtasks the clock ticks on after an op starts: it should stop only
// when the queue drains, not between an op's start and the writes that
// follow from it a few promise hops later (stream hops, flush deferrals),
// but it must stop, or the event loop would never get its turn.
const CLOCK_SPAN = 64;

/** A writer waiting for room in a turn. */
export interface TurnWaiter {
  /** Starts the write that waited (room for it was counted). */
  resumeTurn(): void;
}

// Socket writes started, ever, and the first of them that may share this
// turn's budget.
let started = 0;
let turnFrom = 0;
// The microtask clock: it ticks only until CLOCK_SPAN ticks after the
// latest op start, so it never keeps the microtask queue busy for long.
let tick = 0;
let tickUntil = 0;
let ticking = false;
// Where the clock stopped, as the count of writes started then: the
// latest STOPS of them, a ring.
const STOPS = 64;
const stops = new Float64Array(STOPS);
let stopCount = 0;
// The writers waiting for a turn, in order, and the timer that resumes
// them if no op settles late first.
const waiting: TurnWaiter[] = [];
let timer: ReturnType<typeof setTimeout> | undefined;
// The writes started when the timer was set.
let timerFrom = 0;

function step(): void {
  if (++tick < tickUntil) {
    queueMicrotask(step);
    return;
  }
  ticking = false;
  stops[stopCount++ % STOPS] = started;
}

/**
 * Notes an op (a socket write, or a read) starting now.
 *
 * @param write Whether it is a socket write (counted against the turn).
 * @returns Its mark, for `opSettled`: the clock's stops so far, and its
 * tick (10 bits: a wrapped difference may read as eager, which only
 * leaves the count higher than it is).
 */
export function opStarted(write: boolean): number {
  tickUntil = tick + CLOCK_SPAN;
  if (!ticking) {
    ticking = true;
    queueMicrotask(step);
  }
  if (write) started++;
  return stopCount * 1024 + (tick & 1023);
}

/**
 * Notes an op settling. One that settled late shows where the turn began,
 * and so may resume waiting writers.
 *
 * @param mark What `opStarted` returned for it.
 */
export function opSettled(mark: number): void {
  if (((tick - mark) & 1023) < EAGER_WINDOW) return;
  // The first stop of the clock after the op started came at or before
  // this turn's start. Gone from the ring, it is not known.
  const first = Math.floor(mark / 1024);
  if (first >= stopCount || stopCount - first > STOPS) return;
  const from = stops[first % STOPS]!;
  if (from <= turnFrom) return;
  turnFrom = from;
  if (waiting.length > 0) resume();
}

/** The socket writes counted so far, ever (for the tests). */
export function writesCounted(): number {
  return started;
}

/** Whether a socket write may start now: room in the turn, none waiting. */
export function mayWrite(): boolean {
  return waiting.length === 0 && started - turnFrom < PER_TURN;
}

/** Queues a writer until a turn has room for it (see `mayWrite`). */
export function waitTurn(writer: TurnWaiter): void {
  waiting.push(writer);
  startTimer();
}

function startTimer(): void {
  if (timer !== undefined) return;
  timerFrom = started;
  timer = setTimeout(nextTurn, 0);
}

/** Takes a stopped writer out of the queue; clears the timer if idle. */
export function leaveTurn(writer: TurnWaiter): void {
  const index = waiting.indexOf(writer);
  if (index >= 0) waiting.splice(index, 1);
  if (waiting.length === 0) stopTimer();
}

function stopTimer(): void {
  if (timer !== undefined) {
    clearTimeout(timer);
    timer = undefined;
  }
}

function nextTurn(): void {
  timer = undefined;
  // It runs in a later turn than the one it was set in (but maybe not
  // the first JavaScript of its turn).
  if (timerFrom > turnFrom) turnFrom = timerFrom;
  resume();
}

/** Starts as many waiting writes as this turn has room for, in order. */
function resume(): void {
  const room = PER_TURN - (started - turnFrom);
  if (room > 0) {
    for (const writer of waiting.splice(0, room)) writer.resumeTurn();
  }
  if (waiting.length === 0) stopTimer();
  else startTimer();
}
