/**
 * DSQL's names: cluster ids, regions and endpoint host names (`<cluster-id>.dsql.<region>.on.aws`).
 *
 * @since 0.1.0
 */

/**
 * A cluster id: 26 lowercase letters and digits.
 *
 * @since 0.1.0
 */
export const clusterIdPattern: RegExp = /^[a-z0-9]{26}$/

/**
 * An AWS region name such as `us-east-1` or `ap-southeast-2`.
 *
 * @since 0.1.0
 */
export const regionPattern: RegExp = /^[a-z]{2}(-[a-z]+)+-\d+$/

/** `.dsql` may carry a suffix (`.dsql-fips`, …); the region is the label before `on.aws`. */
const endpointRegionPattern = /\.dsql[^.]*\.([^.]+)\.on\.aws$/

/**
 * Whether `s` is a bare cluster id.
 *
 * @example
 * ```ts
 * import { Endpoint } from "@effect-dsql/core"
 * Endpoint.isClusterId("abcdefghijklmnopqrstuvwxyz") // true
 * ```
 * @since 0.1.0
 */
export const isClusterId = (s: string): boolean => clusterIdPattern.test(s)

/**
 * Whether `s` is shaped like an AWS region name.
 *
 * @since 0.1.0
 */
export const isRegion = (s: string): boolean => regionPattern.test(s)

/**
 * The region of a DSQL endpoint host name (lowercase), as every official connector reads it; `undefined` for a host
 * that is not a DSQL endpoint.
 *
 * @example
 * ```ts
 * import { Endpoint } from "@effect-dsql/core"
 * Endpoint.regionFromEndpoint("abcdefghijklmnopqrstuvwxyz.dsql.eu-west-1.on.aws") // "eu-west-1"
 * ```
 * @since 0.1.0
 */
export const regionFromEndpoint = (host: string): string | undefined => endpointRegionPattern.exec(host)?.[1]

/**
 * The endpoint host name of a cluster: `<cluster-id>.dsql.<region>.on.aws`.
 *
 * @since 0.1.0
 */
export const endpointFor = (clusterId: string, region: string): string => `${clusterId}.dsql.${region}.on.aws`
