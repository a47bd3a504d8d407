/**
 * Mutable state shared by every session of one DsqlLocal server: counters, injected faults, limits and the schema
 * version used to detect OC001 conflicts. Sessions run on Node's event loop, so plain fields need no locking.
 *
 * @internal
 */

import type { CommitFault, Limits, OccCode, Stats } from "../DsqlLocal.js"

export type { CommitFault, Limits, OccCode, Stats, TlsMode, TokenRejection } from "../DsqlLocal.js"

export interface Faults {
  /** Commits still to fail, in order. */
  commitFailures: Array<CommitFault>
  /** Share (0..1) of all other commits to fail, and with which code. */
  commitFailureShare: { share: number; code: OccCode }
  /** Queries still to answer by dropping the connection. */
  dropQueries: number
  /** Statements inside a transaction block still to answer with XX000 server unavailable. */
  unavailableStatements: number
  /** New connections are closed at once until this time (epoch ms). */
  refuseConnectionsUntil: number
  /** Added to every packet, each way. */
  latencyMillis: number
  /** Asynchronous jobs still to record as failed, in order: the details of each. */
  asyncJobFailures: Array<string>
}

/** A session whose open transaction can give its row locks up to another transaction that waits for them. */
export interface LockHolder {
  readonly backendPid: () => number | undefined
  /** Between statements in an open transaction whose locks can be given up. */
  readonly canYield: () => boolean
  /** Gives the locks up when the session is between statements; does nothing otherwise. */
  readonly yieldIfIdle: () => void
  /**
   * When the session is between statements, asks its backend which sessions block backend `pid` and has them give
   * their locks up; false when the session is busy.
   */
  readonly findBlockers: (pid: number) => boolean
  /** Starts watching the statement in flight, if any, for a wait on another session's locks. */
  readonly watchForWaits: () => void
}

export interface ClusterState {
  readonly stats: Stats
  readonly limits: Limits
  readonly faults: Faults
  /** Bumped when a DDL statement commits; transactions that started under an older version fail with OC001. */
  schemaVersion: number
  /** Every open session, asked to give its locks up when a statement waits (DSQL never makes a writer wait). */
  readonly sessions: Set<LockHolder>
  /**
   * Sessions whose transaction block holds the writes savepoint, the only ones that can give locks up: while there
   * are none, no statement is watched for waits (with many sessions, watching costs more than it can find).
   */
  openBlocks: number
  /** Random source for share-based faults (injectable for tests). */
  readonly random: () => number
  readonly now: () => number
}

export const defaultLimits: Limits = {
  maxConnectionAgeMillis: 60 * 60 * 1000,
  maxConnections: 10_000,
  connectionRatePerSecond: 100,
  connectionBurst: 1_000,
  maxRowsPerTransaction: 3_000,
  maxTransactionAgeMillis: 5 * 60 * 1000,
  maxTokenAgeSeconds: undefined
}

export const emptyStats = (): Stats => ({
  connectionsOpen: 0,
  connectionsAccepted: 0,
  connectionsRefused: 0,
  connectionsClosedByAge: 0,
  tokensVerified: 0,
  tokensRejected: {
    "malformed": 0,
    "unknown-access-key": 0,
    "bad-signature": 0,
    "expired": 0,
    "not-yet-valid": 0,
    "expires-too-long": 0,
    "too-old": 0,
    "wrong-action": 0,
    "wrong-host": 0
  },
  tlsModes: { direct: 0, sslrequest: 0 },
  handshakeRoundTrips: 0,
  occErrors: { OC000: 0, OC001: 0 },
  statementsRefused: 0,
  commitsFailedByFault: 0,
  queries: 0
})

export const noFaults = (): Faults => ({
  commitFailures: [],
  commitFailureShare: { share: 0, code: "OC000" },
  dropQueries: 0,
  unavailableStatements: 0,
  refuseConnectionsUntil: 0,
  latencyMillis: 0,
  asyncJobFailures: []
})

export const makeClusterState = (limits: Partial<Limits> = {}): ClusterState => ({
  stats: emptyStats(),
  limits: { ...defaultLimits, ...limits },
  faults: noFaults(),
  schemaVersion: 0,
  sessions: new Set(),
  openBlocks: 0,
  random: Math.random,
  now: Date.now
})

/** Decides whether the commit about to run fails by injection, consuming a queued failure first. */
export const takeCommitFault = (state: ClusterState): CommitFault | undefined => {
  const queued = state.faults.commitFailures.shift()
  if (queued !== undefined) return queued
  const { code, share } = state.faults.commitFailureShare
  return share > 0 && state.random() < share ? code : undefined
}
