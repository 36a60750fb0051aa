/**
 * Version of the control protocol. A client announces it in `hello`; the server accepts versions
 * from {@link MIN_PROTOCOL_VERSION} to {@link PROTOCOL_VERSION} and refuses others with
 * `protocol-version-unsupported`, naming the range it supports.
 */
export const PROTOCOL_VERSION = 3;
/** Oldest control protocol version this code still speaks. */
export const MIN_PROTOCOL_VERSION = 3;
