/**
 * The package version, sent in `application_name`. A test keeps it equal to package.json's.
 *
 * @internal
 */
export const version = "2.0.0"
