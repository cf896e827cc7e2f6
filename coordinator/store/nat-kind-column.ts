// nodes.nat_kind as read back: whatever the column holds (another coordinator's version, a hand
// edit) becomes a NatKind or null, never a value the netmap schema would refuse.
import { NatKind } from '../../proto/control/schemas.js';

export function natKindFromDb(v: unknown): NatKind | null {
  const r = NatKind.safeParse(v);
  return r.success ? r.data : null;
}
