import { OPERATOR_ROLES, type OperatorRole } from '@edgefleet/shared';

/** Who made a request: the role of its token and the token's digest (what a session is tied to). */
export interface Principal {
  /** `admin` for the first admin token (configured or generated), else the API token's id. */
  tokenId: string;
  role: OperatorRole;
  tokenSha256: string;
}

/** Roles are ordered: viewer < operator < admin; a role may do what the weaker ones may. */
export function roleAllows(have: OperatorRole, need: OperatorRole): boolean {
  return OPERATOR_ROLES.indexOf(have) >= OPERATOR_ROLES.indexOf(need);
}
