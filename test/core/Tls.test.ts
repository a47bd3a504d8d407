import { Tls } from "@effect-dsql/core"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { PeerCertificate } from "node:tls"
import { makeAuthority } from "../../local/src/internal/certificates.js"

const host = "abcdefghijklmnopqrstuvwxyz.dsql.us-east-1.on.aws"

/** The fields Node's host name check reads, for a certificate issued to `name`. */
const issuedTo = (name: string) => ({ subject: { CN: name }, subjectaltname: `DNS:${name}` }) as PeerCertificate

describe("Tls.verifyFull", () => {
  it("checks the chain and the DSQL host name, sends SNI and asks for TLS 1.2 or later", () => {
    const options = Tls.verifyFull(host, undefined)
    assert.strictEqual(options.servername, host)
    assert.isTrue(options.rejectUnauthorized)
    assert.strictEqual(options.minVersion, "TLSv1.2")
    assert.isUndefined(options.secureContext, "Node's own roots only, without an extra CA")
  })

  it("checks the certificate against the DSQL host name, never the address dialled", () => {
    const { checkServerIdentity } = Tls.verifyFull(host, undefined)
    assert.isUndefined(checkServerIdentity!("10.0.0.5", issuedTo(host)))
    assert.instanceOf(checkServerIdentity!(host, issuedTo("other.dsql.us-east-1.on.aws")), Error)
  })

  it.effect("gives every client that trusts the same CA one secure context, another CA its own", () =>
    Effect.gen(function*() {
      const [first, second] = yield* Effect.all([makeAuthority(), makeAuthority()])
      const context = Tls.verifyFull(host, first.certPem).secureContext
      assert.isDefined(context)
      assert.strictEqual(Tls.verifyFull("other.dsql.us-east-1.on.aws", first.certPem).secureContext, context)
      assert.notStrictEqual(Tls.verifyFull(host, second.certPem).secureContext, context)
    }))
})
