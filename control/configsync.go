package control

import (
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/store"
)

// ConfigTokens resolves the api.tokens of the config file to store tokens
// (name, scope, hash of the secret), reading the secret of a token_env
// token from env. An unset variable or a secret shorter than MinTokenLen
// is an error naming the token and the variable. `tollgate check` and
// every start run it.
func ConfigTokens(cfg *configs.Config, env func(string) string, now time.Time) ([]store.Token, error) {
	out := make([]store.Token, 0, len(cfg.API.Tokens))
	for i, t := range cfg.API.Tokens {
		var hash string
		switch {
		case t.TokenEnv != "":
			secret := env(t.TokenEnv)
			if secret == "" {
				return nil, fmt.Errorf("api.tokens[%d].token_env: token %q: environment variable %s is not set", i, t.Name, t.TokenEnv)
			}
			if len(secret) < MinTokenLen {
				return nil, fmt.Errorf("api.tokens[%d].token_env: token %q: the secret in %s must be at least %d characters, got %d",
					i, t.Name, t.TokenEnv, MinTokenLen, len(secret))
			}
			hash = hashToken(secret)
		case t.TokenSHA256 != "":
			hash = normaliseHash(t.TokenSHA256)
		default:
			return nil, fmt.Errorf("api.tokens[%d]: token %q: exactly one of token_env and token_sha256 is required", i, t.Name)
		}
		out = append(out, store.Token{Name: t.Name, Scope: t.Scope, Hash: hash, Created: now})
	}
	return out, nil
}

// syncTokens makes the stored tokens follow the config file's api.tokens
// on a start after the first: a token the file names is created if it is
// missing and takes the file's scope and secret (token_env: the
// environment's, read at this start) if they changed. Tokens created
// through the API are left alone. It returns the batch to write (nil:
// nothing changed) and the store's tokens afterwards; with
// cluster.enabled the batch marks each token as not yet replicated.
func syncTokens(cfg *configs.Config, stored []store.Token, want []store.Token, now time.Time, log zerolog.Logger) (*store.Batch, []store.Token) {
	byName := make(map[string]int, len(stored))
	out := append([]store.Token(nil), stored...)
	for i, t := range out {
		byName[t.Name] = i
	}
	var b store.Batch
	for i, w := range want {
		src := "token_sha256"
		if env := cfg.API.Tokens[i].TokenEnv; env != "" {
			src = "the environment variable " + env
		}
		j, ok := byName[w.Name]
		if !ok {
			out = append(out, w)
			b.PutTokens = append(b.PutTokens, w)
			b.Audit = append(b.Audit, audit(now, "config", "token.create", "tokens/"+w.Name, "", nil, tokenView(w)))
			log.Warn().Str("token", w.Name).Msg("token of the config file was not in the store: created again (remove it from api.tokens to revoke it)")
			continue
		}
		old := out[j]
		if old.Hash == w.Hash && old.Scope == w.Scope {
			continue
		}
		var what []string
		if old.Hash != w.Hash {
			what = append(what, "secret (from "+src+")")
		}
		if old.Scope != w.Scope {
			what = append(what, fmt.Sprintf("scope %s -> %s", old.Scope, w.Scope))
		}
		w.Created = old.Created
		out[j] = w
		b.PutTokens = append(b.PutTokens, w)
		b.Audit = append(b.Audit, audit(now, "config", "token.update", "tokens/"+w.Name, "", tokenView(old), tokenView(w)))
		log.Info().Str("token", w.Name).Str("changed", strings.Join(what, ", ")).
			Msg("token updated from the config file")
	}
	if len(b.PutTokens) == 0 {
		return nil, out
	}
	if cfg.Cluster.Enabled {
		// In a cluster the config bucket is the source of truth and a
		// start applies it: without a pending mark, its older token would
		// undo this one. Marked, the token is published first and wins
		// (last writer per object), as an operator's change made while
		// NATS was away.
		for _, t := range b.PutTokens {
			b.Unreplicated = append(b.Unreplicated, store.Unreplicated{Kind: kindToken, Name: t.Name, Actor: "config", At: now})
		}
	}
	return &b, out
}

// logDrift logs, on a start after the first, each plan and tenant of the
// config file that differs from the store's (or that the store does not
// have): the store is the source of truth after the first start, so such
// an edit of the file is not in effect until it is applied.
func logDrift(cfg *configs.Config, state *store.State, log zerolog.Logger) {
	plans, tenants := normalise(cfg.Plans, cfg.Tenants)
	storedPlans := make(map[string]configs.Plan, len(state.Plans))
	for _, p := range state.Plans {
		storedPlans[p.Name] = normalisePlan(p) // as Open keeps them
	}
	storedTenants := make(map[string]configs.Tenant, len(state.Tenants))
	for _, t := range state.Tenants {
		storedTenants[t.Name] = t
	}
	n := 0
	report := func(kind, name string, old any, exists bool, next any) {
		ev := log.Warn().Str(kind, name)
		if !exists {
			ev.Msg(kind + " of the config file is not in the store (deleted through the API, or added to the file since the first start): not in effect")
			n++
			return
		}
		d := diff(old, next)
		if len(d) == 0 {
			return
		}
		n++
		const max = 5
		if len(d) > max {
			d = append(d[:max:max], fmt.Sprintf("(+%d more)", len(d)-max))
		}
		ev.Str("file_vs_store", strings.Join(d, "; ")).
			Msg(kind + " differs between the config file and the store: the store's is in effect")
	}
	for _, p := range plans {
		old, ok := storedPlans[p.Name]
		report("plan", p.Name, old, ok, p)
	}
	for _, t := range tenants {
		old, ok := storedTenants[t.Name]
		if ok && asCreated(old, t, cfg.TenantDefaults) {
			// Created by `tollgate apply -f` from the file: the limits
			// the file leaves unset were pre-filled from tenant_defaults.
			continue
		}
		report("tenant", t.Name, old, ok, t)
	}
	if n > 0 {
		log.Warn().Int("objects", n).
			Msg("the config file's plans and tenants seed the store on the first start only; to put the file's in effect run `tollgate apply -f CONFIG_FILE` (--dry-run shows the diff), or for a demo wipe store.data_dir (make reset-demo)")
	}
}

// mergeMarks adds the marks add to marks, replacing one of the same kind
// and name.
func mergeMarks(marks, add []store.Unreplicated) []store.Unreplicated {
	for _, a := range add {
		replaced := false
		for i, m := range marks {
			if m.Kind == a.Kind && m.Name == a.Name {
				marks[i], replaced = a, true
			}
		}
		if !replaced {
			marks = append(marks, a)
		}
	}
	return marks
}
