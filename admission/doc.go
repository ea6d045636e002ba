// Package admission is the heart of tollgate: a pure, deterministic state
// machine that decides whether a call may start and counts the calls that
// are running.
//
// Following etcd-io/raft, the package does no I/O of its own: it imports no
// network, file, logging or storage package, never reads the clock (the
// current time is always passed in as an argument) and starts no goroutines.
// The caller feeds it requests and applies the decisions it returns. An
// [Engine] is not safe for concurrent use; a [Runner] owns one and
// serialises access to it.
//
// # Limits model
//
// A [Plan] holds default limits. A [Tenant] is on exactly one plan and may
// override any of its limits; the effective limit is the tenant override if
// set, else the plan value ([Engine.EffectiveLimits]). Resetting a tenant
// ([Engine.ResetTenant]) clears every override.
//
// Count limits are *int64 with these meanings:
//
//	nil   inherit (from the plan); unset in both plan and tenant = unlimited
//	-1    unlimited
//	 0    blocked: every call is rejected
//	 N>0  cap: the (N+1)th concurrent call is rejected
//
// Any value below -1 is invalid ([ErrInvalidLimit]).
//
// For now the engine enforces the per-tenant max_parallel_calls cap.
// Lowering a cap below current usage never releases running calls; it only
// rejects new ones until usage drops below the cap.
//
// # Calls
//
// [Engine.Admit] is idempotent by CallID: a CallID that is already active is
// admitted again without being counted twice. [Engine.Release] frees a slot
// exactly once per admitted call; counters never go negative.
package admission
