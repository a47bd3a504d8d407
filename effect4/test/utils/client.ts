/**
 * effect-dsql 2's client on a running DsqlLocal, with a pool and a static-credentials signer of its own.
 */
import { Effect, Layer } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as DsqlClient from "../../src/DsqlClient.js"
import * as DsqlConfig from "../../src/DsqlConfig.js"
import * as TokenSigner from "../../src/TokenSigner.js"
import type * as DsqlLocal from "./dsqlLocal.js"

type Server = DsqlLocal.DsqlLocal["Service"]

/** A signer with the server's generated credentials. */
export const signerFor = (server: Server) =>
  TokenSigner.layerStatic({
    accessKeyId: server.credentials.accessKeyId,
    secretAccessKey: server.credentials.secretAccessKey
  })

/** Options reaching the server by its address, verifying its certificate against its CA. */
export const optionsFor = (server: Server, overrides?: DsqlConfig.Options): DsqlConfig.Options => ({
  host: server.hostname,
  port: server.port,
  region: server.region,
  hostAddress: server.address,
  caPem: server.ca,
  ...overrides
})

/** A client of its own (its own pool and signer) for the test's scope. */
export const open = (
  server: Server,
  overrides?: DsqlConfig.Options,
  signer: Layer.Layer<TokenSigner.TokenSigner> = signerFor(server)
) =>
  Effect.flatMap(DsqlConfig.make(optionsFor(server, overrides)), (config) => DsqlClient.make(config)).pipe(
    Effect.provide(Layer.merge(Reactivity.layer, signer))
  )
