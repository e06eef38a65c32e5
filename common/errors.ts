/**
 * Errors shared by activities and workflows. The class name becomes the Temporal failure type,
 * so workflows match on `type`, and the retry policies read {@link NON_RETRYABLE_ERRORS}.
 */

/** Base class: sets `name` from the subclass and keeps `cause`. */
export class KubemendError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The worker has no configuration for the cluster a run names. */
export class UnknownClusterError extends KubemendError {}

/** A runbook, inventory or input is invalid; retrying cannot help. */
export class ConfigError extends KubemendError {}

/** A node presented a host key that does not match the pinned one. */
export class HostKeyMismatchError extends KubemendError {}

/** A node has no tool kubemend knows how to use for the job (e.g. no time-sync client). */
export class UnsupportedNodeError extends KubemendError {}

/** A remote command ran and failed; carries the exit code and the last stderr lines. */
export class RemoteCommandError extends KubemendError {
  constructor(
    readonly node: string,
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(
      `${node}: '${command}' exited ${exitCode ?? 'by signal'}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
    );
  }
}

/** A node could not be reached over SSH (refused, timed out, reset). Retryable. */
export class NodeUnreachableError extends KubemendError {}

/** The Kubernetes API refused a request in a way retrying cannot fix (400, 403, 404, 422). */
export class KubernetesRequestError extends KubemendError {}

/** A wait ran out of time before the cluster converged; the message says what is missing. */
export class ConvergenceTimeoutError extends KubemendError {}

/** Failure types that no retry policy retries. */
export const NON_RETRYABLE_ERRORS = [
  'UnknownClusterError',
  'ConfigError',
  'HostKeyMismatchError',
  'UnsupportedNodeError',
  'KubernetesRequestError',
  'ConvergenceTimeoutError',
];
