package control

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/api"
	"github.com/tollgate/tollgate/store"
)

// TokenPrefix starts every token secret the API creates.
const TokenPrefix = "tg_"

func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func normaliseHash(h string) string { return strings.ToLower(strings.TrimSpace(h)) }

func tokenView(t store.Token) api.TokenView {
	return api.TokenView{Name: t.Name, Scope: api.Scope(t.Scope), Created: t.Created}
}

// Authenticate returns the principal of a bearer token secret.
func (s *Service) Authenticate(token string) (api.Principal, bool) {
	if token == "" {
		return api.Principal{}, false
	}
	h := hashToken(token)
	s.tokMu.RLock()
	defer s.tokMu.RUnlock()
	p, ok := s.byHash[h]
	if !ok {
		return api.Principal{}, false
	}
	// The map lookup already matched; compare again in constant time
	// against the stored hash for good measure.
	if subtle.ConstantTimeCompare([]byte(s.tokens[p.Name].Hash), []byte(h)) != 1 {
		return api.Principal{}, false
	}
	return p, true
}

// ListTokens returns the tokens (without secrets), sorted by name.
func (s *Service) ListTokens(context.Context) ([]api.TokenView, error) {
	s.tokMu.RLock()
	defer s.tokMu.RUnlock()
	out := make([]api.TokenView, 0, len(s.tokens))
	for _, t := range s.tokens {
		out = append(out, tokenView(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// CreateToken creates a token with a random secret ("tg_" + 64 hex
// digits), shown once; only its SHA-256 is stored.
func (s *Service) CreateToken(_ context.Context, actor, name string, scope api.Scope) (api.NewToken, error) {
	if msg := validName(name); msg != "" {
		return api.NewToken{}, &api.FieldError{Field: "name", Message: msg}
	}
	if !scope.Valid() {
		return api.NewToken{}, &api.FieldError{Field: "scope", Message: fmt.Sprintf("must be admin, settings, billing or read, got %q", scope)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokMu.RLock()
	_, exists := s.tokens[name]
	s.tokMu.RUnlock()
	if exists {
		return api.NewToken{}, existsErr("token", name)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return api.NewToken{}, fmt.Errorf("control: token secret: %w", err)
	}
	secret := TokenPrefix + hex.EncodeToString(raw[:])
	now := s.now()
	tok := store.Token{Name: name, Scope: string(scope), Hash: hashToken(secret), Created: now}
	view := tokenView(tok)
	if err := s.putToken(now, tok, audit(now, actor, "token.create", "tokens/"+name, "", nil, view)); err != nil {
		return api.NewToken{}, err
	}
	return api.NewToken{TokenView: view, Token: secret}, nil
}

// putToken commits tok with its audit entry and makes it authenticate.
// Called with mu held.
func (s *Service) putToken(now time.Time, tok store.Token, entry store.AuditEntry) error {
	if err := s.submit(&store.Batch{PutTokens: []store.Token{tok}, Audit: []store.AuditEntry{entry}}, now); err != nil {
		return err
	}
	s.tokMu.Lock()
	if old, ok := s.tokens[tok.Name]; ok {
		delete(s.byHash, old.Hash)
	}
	s.tokens[tok.Name] = tok
	s.byHash[tok.Hash] = api.Principal{Name: tok.Name, Scope: api.Scope(tok.Scope)}
	s.tokMu.Unlock()
	return nil
}

// DeleteToken deletes a token; it stops authenticating at once.
func (s *Service) DeleteToken(_ context.Context, actor, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteToken(s.now(), actor, name)
}

// deleteToken is DeleteToken with mu held.
func (s *Service) deleteToken(now time.Time, actor, name string) error {
	s.tokMu.Lock()
	tok, ok := s.tokens[name]
	if ok {
		delete(s.tokens, name)
		delete(s.byHash, tok.Hash)
	}
	s.tokMu.Unlock()
	if !ok {
		return notFound("token", name)
	}
	return s.submit(&store.Batch{
		DeleteTokens: []string{name},
		Audit:        []store.AuditEntry{audit(now, actor, "token.delete", "tokens/"+name, "", tokenView(tok), nil)},
	}, now)
}
