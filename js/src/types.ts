/** `cookie`: the refresh token lives in an HttpOnly cookie (browsers). `body`: in a storage adapter. */
export type Mode = "cookie" | "body";

export interface User {
  id: number;
  email: string;
  name: string | null;
  role: string;
  email_verified_at: string | null;
  created_at: string;
}

export interface DeviceInfo {
  fingerprint?: string;
  userAgent?: string;
  ip?: string;
  browser?: string;
  os?: string;
  device?: "Desktop" | "Mobile" | "Tablet" | "Bot" | "Unknown";
}

export interface Session {
  id: string;
  device_info: DeviceInfo | null;
  ip_address: string | null;
  created_at: string;
  last_activity: string;
  expires_at: string;
  is_current: boolean;
  /** How it was authenticated: "aal1" one factor, "aal2" two; `amr` as RFC 8176 values; `auth_time` when. */
  aal: "aal1" | "aal2";
  amr: string[];
  auth_time: string;
}

export interface SessionList {
  current_session: Session | null;
  other_sessions: Session[];
}

export interface SecurityEvent {
  id: number;
  type: string;
  at: string;
  session_id: string | null;
  ip_address: string | null;
  device_info: DeviceInfo | null;
  details: Record<string, unknown> | null;
}

export type Factor = "totp" | "recovery_code" | "passkey";

export interface SignedIn {
  mfaRequired: false;
  user: User;
  session: { id: string; expires_at: string; device_info: DeviceInfo | null };
}

/** The password was right; the account has a second factor: answer `challenge` with `signInMfa`. */
export interface MfaRequired {
  mfaRequired: true;
  challenge: string;
  factors: Factor[];
  /** With "passkey" among the factors: the request options to answer with `browserAssertion` (`{ passkey }`). */
  passkeyOptions?: unknown;
}

export interface Passkey {
  id: number;
  name: string;
  created_at: string;
  last_used_at: string | null;
  transports: string[];
  backed_up: boolean;
}

export type SignInResult = SignedIn | MfaRequired;

export interface MfaStatus {
  factors: Factor[];
  totp: { confirmed: boolean; created_at: string; confirmed_at: string | null } | null;
  recovery_codes_left: number;
}

export interface TotpEnrolment {
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

/** A WebAuthn credential as JSON (`PublicKeyCredential.toJSON()`). */
export type CredentialJSON = Record<string, unknown>;

export type SecondFactor = { totp: string } | { recovery_code: string } | { passkey: CredentialJSON };

export type AuthEvent = "signed_in" | "token_refreshed" | "signed_out" | "refresh_failed";
