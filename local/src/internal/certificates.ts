/**
 * A throwaway certificate authority and the server certificates it signs, so DsqlLocal can serve TLS that clients
 * verify in full (chain and host name), as they must against DSQL. Dates and names are options so that tests can
 * also build what a client has to refuse: an expired certificate, one for another host, one from another authority.
 *
 * @internal
 */
import type * as X509 from "@peculiar/x509"
import * as Effect from "effect/Effect"
import { webcrypto } from "node:crypto"
import { LocalFailure } from "./failure.js"
import type { OptionalPackage } from "./packages.js"
import { declaredVersions } from "./packages.js"

/**
 * A certificate and its private key, both PEM (the key as PKCS#8), ready for `tls.createServer`.
 *
 * @since 0.1.0
 * @category models
 */
export interface KeyAndCertificate {
  readonly certPem: string
  readonly keyPem: string
}

/**
 * A certificate authority: clients trust `certPem`; `issueServerCertificate` signs with its key.
 *
 * @since 0.1.0
 * @category models
 */
export interface Authority extends KeyAndCertificate {
  readonly certificate: X509.X509Certificate
  readonly privateKey: webcrypto.CryptoKey
}

const signingAlgorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const

const certificatesError = (message: string) => (cause: unknown) =>
  new LocalFailure({ reason: "Certificates", message, cause })

/** Default validity: from an hour ago (tolerates clock skew) to 30 days ahead. */
const validity = (options: { readonly notBefore?: Date; readonly notAfter?: Date }) => {
  const now = Date.now()
  return {
    notBefore: options.notBefore ?? new Date(now - 60 * 60 * 1000),
    notAfter: options.notAfter ?? new Date(now + 30 * 24 * 60 * 60 * 1000)
  }
}

let x509Module: Promise<typeof X509> | undefined

/**
 * Loads @peculiar/x509 on first use. Its dependency tsyringe refuses to load unless a Reflect metadata polyfill is
 * present, yet only reads metadata that x509 never writes (its decorators run while the module evaluates). When no
 * polyfill is installed, an empty one stands in for the duration of the import and is removed again, so the process's
 * global `Reflect` is left as it was.
 */
const loadX509 = (): Promise<typeof X509> =>
  x509Module ??= (async () => {
    const reflect = Reflect as unknown as Partial<Record<"getMetadata" | "getOwnMetadata", () => undefined>>
    if (reflect.getMetadata !== undefined) return import("@peculiar/x509")
    reflect.getMetadata = reflect.getOwnMetadata = () => undefined
    try {
      return await import("@peculiar/x509")
    } finally {
      delete reflect.getMetadata
      delete reflect.getOwnMetadata
    }
  })()

/**
 * @peculiar/x509, one of DsqlLocal's optional packages (DsqlLocal.start loads it before it builds certificates).
 *
 * @since 0.1.0
 * @category models
 */
export const x509Package: OptionalPackage<typeof X509> = {
  name: "@peculiar/x509",
  version: declaredVersions["@peculiar/x509"],
  load: loadX509
}

const generateKeys = (): Promise<webcrypto.CryptoKeyPair> =>
  webcrypto.subtle.generateKey(signingAlgorithm, true, ["sign", "verify"])

const privateKeyPem = async (x509: typeof X509, key: webcrypto.CryptoKey): Promise<string> =>
  x509.PemConverter.encode(await webcrypto.subtle.exportKey("pkcs8", key), "PRIVATE KEY")

/**
 * Creates a self-signed ECDSA P-256 certificate authority (basicConstraints CA, keyCertSign and cRLSign).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAuthority = (
  options: { readonly commonName?: string; readonly notBefore?: Date; readonly notAfter?: Date } = {}
): Effect.Effect<Authority, LocalFailure> =>
  Effect.tryPromise({
    try: async () => {
      const x509 = await loadX509()
      const keys = await generateKeys()
      const certificate = await x509.X509CertificateGenerator.createSelfSigned({
        name: `CN=${options.commonName ?? "DsqlLocal test authority"}`,
        ...validity(options),
        signingAlgorithm,
        keys,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto)
        ]
      }, webcrypto)
      return {
        certificate,
        privateKey: keys.privateKey,
        certPem: certificate.toString("pem"),
        keyPem: await privateKeyPem(x509, keys.privateKey)
      }
    },
    catch: certificatesError("Could not create the certificate authority")
  })

/**
 * Issues a server certificate signed by `authority` for the given DNS names (wildcards such as
 * `*.dsql.us-east-1.on.aws` allowed) and IP addresses, with extended key usage serverAuth.
 *
 * @since 0.1.0
 * @category constructors
 */
export const issueServerCertificate = (
  authority: Authority,
  options: {
    readonly hostnames: ReadonlyArray<string>
    readonly ipAddresses?: ReadonlyArray<string>
    readonly notBefore?: Date
    readonly notAfter?: Date
  }
): Effect.Effect<KeyAndCertificate, LocalFailure> =>
  Effect.tryPromise({
    try: async () => {
      const x509 = await loadX509()
      const keys = await generateKeys()
      const ipAddresses = options.ipAddresses ?? []
      const certificate = await x509.X509CertificateGenerator.create({
        subject: `CN=${options.hostnames[0] ?? ipAddresses[0] ?? "DsqlLocal"}`,
        issuer: authority.certificate.subject,
        ...validity(options),
        signingAlgorithm,
        publicKey: keys.publicKey,
        signingKey: authority.privateKey,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([
            ...options.hostnames.map((value) => ({ type: "dns" as const, value })),
            ...ipAddresses.map((value) => ({ type: "ip" as const, value }))
          ]),
          await x509.AuthorityKeyIdentifierExtension.create(authority.certificate, false, webcrypto),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto)
        ]
      }, webcrypto)
      return { certPem: certificate.toString("pem"), keyPem: await privateKeyPem(x509, keys.privateKey) }
    },
    catch: certificatesError("Could not issue the server certificate")
  })
