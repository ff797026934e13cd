/** Why a session ended: signed out here or in another tab, refused by the service, or the account deleted. */
export type SignedOutReason = "signed_out" | "revoked" | "deleted";

/** There is no session (`reason` "none": there never was one in this context). */
export class SignedOutError extends Error {
  readonly reason: SignedOutReason | "none";

  constructor(reason: SignedOutReason | "none") {
    super(`signed out (${reason})`);
    this.name = "SignedOutError";
    this.reason = reason;
  }
}

export interface FieldError {
  field: string;
  message: string;
}

/** A refused or failed call; `message` is the service's sentence, safe to show to the user. */
export class ApiError extends Error {
  readonly status: number;
  readonly errors: FieldError[];
  /** A machine-readable code when the service gives one, such as "step_up_required". */
  readonly code: string | null;
  /** With "step_up_required": the level `reauthenticate` must reach ("aal2": a second factor, not the password). */
  readonly aal: "aal1" | "aal2" | null;

  constructor(status: number, body: unknown) {
    const envelope = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    super(typeof envelope.message === "string" ? envelope.message : `Request failed (${status})`);
    this.name = "ApiError";
    this.status = status;
    this.errors = Array.isArray(envelope.errors) ? (envelope.errors as FieldError[]) : [];
    this.code = typeof envelope.code === "string" ? envelope.code : null;
    this.aal = envelope.aal === "aal1" || envelope.aal === "aal2" ? envelope.aal : null;
  }
}
