// Package admission is the heart of tollgate: a pure, deterministic state
// machine that decides whether a call may start, meters the calls that run,
// and says when and which calls must be cut.
//
// Following etcd-io/raft, the package does no I/O: it imports no network,
// file, logging or storage package, never reads the clock (every method
// that depends on time takes now as an argument) and starts no goroutines.
// It returns decisions and effects as data ([Decision], [Output]: events to
// publish, calls to cut); the caller carries them out. An [Engine] is not
// safe for concurrent use; a [Runner] owns one and serialises access to it
// with one mutex.
//
// # Limits model
//
// A [Plan] holds default limits and a rate table. A [Tenant] is on one plan
// and may override any limit; the effective limit is the tenant override if
// set, else the plan value ([Engine.EffectiveLimits]); unset in both means
// unlimited (alert threshold 80 %, auto_suspend off, destinations enabled).
// [Engine.ResetTenant] ("reset to defaults") sets the overrides back to
// [Settings].TenantDefaults, which also pre-fill tenants made with
// [Engine.CreateTenant].
//
// Count limits are *int64:
//
//	nil   inherit (tenant) / unlimited (plan)
//	-1    unlimited
//	 0    blocked: new calls are rejected
//	 N>0  cap
//
// Tenant limits: max_parallel_calls (total) and max_parallel_inbound /
// max_parallel_outbound; max_calls_per_second with cps_burst (a token
// bucket, implemented as GCRA); max_monthly_minutes (inbound + outbound
// billed time); monthly_spend_limit (micro-units); destination classes
// (boolean limits on the class of the dialled number of outbound calls,
// longest prefix over all classes); alert_threshold_pct; auto_suspend.
// A [Role] caps each of its users individually (max_parallel_calls,
// max_monthly_minutes); the user is the caller of an outbound call and the
// dialled number of an inbound one. Role and tenant caps are independent:
// either one blocks.
//
// # Admission
//
// [Engine.Admit] checks, in order: unknown tenant; emergency number (always
// admitted, never cut, counted only as emergency usage); suspended tenant;
// destination class; tenant parallel caps; role parallel cap; CPS (a token
// is consumed only when every check passes; overflow carries RetryAfter);
// tenant minutes and spend; role minutes. Each rejection carries a
// configurable SIP code and reason ([Settings].Rejects) and a Reason-header
// text ([Rejection.Text]). Admit is idempotent by CallID and [Engine.End]
// releases a call exactly once.
//
// # Metering, rating and budgets
//
// Billing runs from [Engine.Answer] to [Engine.End] (or the cut instant),
// exact to the nanosecond. Rating uses the longest matching prefix of the
// dialled number in the plan's rates (fixed at Admit): connect fee plus
// price per minute over the billed seconds, in initial/subsequent
// increments, integer micro-units rounded half up; each increment is
// charged when it starts.
//
// Every minutes or spend budget (tenant, and each user on a role) knows the
// calls drawing on it and computes the exact instant it runs out (minutes:
// now + remaining/k for k calls; spend: the first increment that cannot be
// paid) and the instant it crosses the alert threshold. Those instants live
// in an indexed min-heap; [Engine.NextDeadline] is its top (or the next
// month start) and [Engine.Tick] processes every deadline up to now, each at
// its own instant, so a late Tick still cuts and bills exactly. Deadlines
// are recomputed whenever a call is answered or ends or a limit changes. A
// spend budget far from running out is given a conservative re-evaluation
// instant instead (at most a few per budget), so answers and ends stay
// O(calls of the tenant) instead of a binary search each.
//
// Tenant minutes and spend budgets are hard when auto_suspend is on: an
// exhausted budget rejects, and at its exhaustion instant the calls drawing
// on it are cut and the tenant is suspended. Otherwise they are soft: only
// usage.threshold and usage.cap_reached are emitted, once per cap per
// cycle. Role minutes are always hard and never suspend the tenant.
// Parallel and CPS caps always reject. Lowering a cap below usage is not
// retroactive: the budget is pending and trips at the tenant's next INVITE
// or charge (the answer or end of a call drawing on it). A raised cap moves
// the deadlines at once.
//
// # Cycle and suspension
//
// The cycle is the calendar month in UTC. Every method first rolls the
// cycle when now is in a later month: seconds and charges of running calls
// up to the boundary stay in the old month, counters and event flags
// restart, cycle.rollover is emitted and, with ResumeOnRollover, tenants
// suspended by a monthly cap are resumed. [Engine.Suspend] and
// [Engine.Resume] are the manual transitions; suspending cuts every active
// non-emergency call.
//
// # Cost
//
// Admit, Answer and End are O(log n) in the number of scheduled budgets
// plus O(calls of the tenant) for spend budgets, with no scan of all
// tenants (the rollover visits every tenant once a month), and no
// allocation in the steady state.
package admission
