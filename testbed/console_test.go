package testbed

// Browser tests of the web console: a real Chromium (headless, driven by
// chromedp) against a real gateway process, with SIPp calls through it.
// Set TOLLGATE_SCREENSHOTS=docs/console (relative to the repository) to
// write a PNG of every page there; normal runs write nothing.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// requireBrowser returns the Chromium executable, or skips the test when
// there is none, unless TOLLGATE_REQUIRE_BROWSER=1 (CI), where a missing
// browser fails it.
func requireBrowser(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("TOLLGATE_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium on PATH and TOLLGATE_REQUIRE_BROWSER=1: install the Debian package chromium (.ci/run does)")
	}
	t.Skip("no chromium on PATH (Debian package chromium): skipping the console browser tests; TOLLGATE_REQUIRE_BROWSER=1 makes this a failure")
	return ""
}

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
	// shots is the screenshot directory ("" = none).
	shots string
}

func startBrowser(t *testing.T, exe string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // the tests run as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1360, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute) // the test takes ~20 s; a loaded CI machine is slower
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	if dir := os.Getenv("TOLLGATE_SCREENSHOTS"); dir != "" {
		if !filepath.IsAbs(dir) {
			dir = filepath.Join("..", dir) // relative to the repository, the tests run in testbed/
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b.shots = dir
	}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", exe, err)
	}
	return b
}

// do runs steps; a failure ends the test with the page's text.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, b.pageText())
	}
}

// clickRow clicks an element of a table the page re-renders while it
// polls (every 2 s): the node found may be replaced before the click
// lands ("Could not find node with given id"), so a failed click is tried
// again on the new node, for up to 10 s.
func (b *browser) clickRow(what, sel string) {
	b.t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
		err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
	}
	b.t.Fatalf("%s: %v\npage:\n%s", what, err, b.pageText())
}

// eval evaluates a JavaScript expression.
func evalJS[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// wait polls a JavaScript predicate until it is truthy (a predicate that
// throws, e.g. on an element not there yet, is false).
func (b *browser) wait(what string, expr string, timeout time.Duration) {
	b.t.Helper()
	safe := "(() => { try { return !!(" + expr + "); } catch (e) { return false; } })()"
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](safe,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		b.t.Fatalf("waiting for %s (%s): %v\npage:\n%s", what, expr, err, b.pageText())
	}
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// shot writes a PNG of the whole page as name.png when screenshots are on.
func (b *browser) shot(name string) {
	b.t.Helper()
	if b.shots == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// apiCall sends a JSON request to the gateway's admin API with token and
// decodes the answer into out (when not nil); it fails the test on a
// status other than want.
func apiCall(t *testing.T, g *gateway, token, method, path string, body any, want int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, g.apiURL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestConsoleBrowser drives the console in Chromium: login, the demo
// tenant's usage moving with a SIPp call, a limit edited in the form and
// obeyed by the next INVITE, a field error from bad input, suspend and
// resume, the audit entries, the live events and calls pages with a hang
// up, a read-only token's disabled controls, and paging and search over
// 1,000 tenants.
func TestConsoleBrowser(t *testing.T) {
	exe := requireBrowser(t)
	requireSIPp(t)
	start := time.Now()
	gw := startGateway(t, gatewayConfig{MaxParallelCalls: 10, ShutdownGrace: time.Second})
	startUAS(t, gw)
	b := startBrowser(t, exe)

	// ---- login
	b.do("open the console", chromedp.Navigate(gw.apiURL+"/"), chromedp.WaitVisible(chromedp.CSS(`input[name="token"]`)))
	b.shot("login")
	b.do("wrong token", chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), "not-a-token"), chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.wait("the refusal", `!document.getElementById('login-error').hidden && document.getElementById('login-error').textContent.includes('refused')`, 10*time.Second)
	b.do("log in", chromedp.SetValue(chromedp.CSS(`input[name="token"]`), adminToken), chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.wait("the tenants table", `document.querySelector('#tenants tr[data-tenant="demo"] .bar[data-cap="max_parallel_calls"]') !== null`, 10*time.Second)
	// The provisioning caps' use, used/cap, from the tenant list.
	if got := evalJS[string](b, `(() => { const d = document.querySelector('#tenants tr[data-tenant="demo"] td.provisioned [data-prov="users"]'); return d ? d.dataset.used + '/' + d.dataset.limit + ' ' + d.parentNode.textContent : 'none'; })()`); !strings.HasPrefix(got, "0/-1 DIDs ") || !strings.HasSuffix(got, ", users 0/unlimited") {
		t.Fatalf("provisioned cell of demo: %q", got)
	}
	if got := evalJS[string](b, `sessionStorage.getItem('tollgate.token')`); got != adminToken {
		t.Fatalf("token in sessionStorage %q", got)
	}
	if got := evalJS[string](b, `document.getElementById('who').dataset.scope`); got != "admin" {
		t.Fatalf("who: scope %q", got)
	}

	// ---- usage moves with a SIPp call: parallel 1 while it lasts, then
	// minutes > 0 once it has ended, without a reload.
	usedOf := func(capName string) string {
		return `(document.querySelector('#tenants tr[data-tenant="demo"] .bar[data-cap="` + capName + `"]') || {dataset: {}}).dataset.used`
	}
	if got := evalJS[string](b, usedOf("max_monthly_minutes")); got != "0" {
		t.Fatalf("minutes used before any call %q", got)
	}
	uac := startUAC(t, gw, 30*time.Second, "-sn", "uac", "-m", "1", "-d", "3000")
	b.wait("1 parallel call in the table", usedOf("max_parallel_calls")+` === "1"`, 10*time.Second)
	b.wait("the parallel bar at 10 %", `document.querySelector('#tenants tr[data-tenant="demo"] .bar[data-cap="max_parallel_calls"]').dataset.percent === "10.000" && document.querySelector('#tenants tr[data-tenant="demo"] .bar[data-cap="max_parallel_calls"]').dataset.level === "ok"`, 5*time.Second)
	if code := uac.wait(20 * time.Second); code != 0 {
		t.Fatalf("sipp uac exit code %d", code)
	}
	b.wait("minutes used after the call", `Number(`+usedOf("max_monthly_minutes")+`) >= 0.05 && `+usedOf("max_parallel_calls")+` === "0"`, 10*time.Second)

	// ---- tenant detail: edit a limit, the next INVITE obeys it.
	b.clickRow("open the tenant", `#tenants a.tenant-link`)
	b.wait("the limits form", `document.querySelector('#limits-form td.effective[data-field="max_parallel_calls"]') && document.querySelector('#limits-form td.effective[data-field="max_parallel_calls"]').textContent === '10'`, 10*time.Second)
	if got := evalJS[string](b, `document.querySelector('#limits-form td.source[data-field="max_parallel_calls"]').dataset.source`); got != "plan" {
		t.Fatalf("source before the edit %q", got)
	}
	b.wait("the day chart", `document.querySelectorAll('#usage-chart rect.day:not(.empty)').length === 1`, 10*time.Second)
	b.do("bad input", chromedp.SetValue(chromedp.CSS(`#limits-form input[name="max_parallel_calls"]`), "ten"), chromedp.Click(chromedp.CSS(`#save-limits`)))
	b.wait("the field error", `document.querySelector('#limits-form input[name="max_parallel_calls"]').classList.contains('invalid') && document.getElementById('limits-error').textContent.startsWith('max_parallel_calls: ')`, 10*time.Second)
	b.do("block parallel calls", chromedp.SetValue(chromedp.CSS(`#limits-form input[name="max_parallel_calls"]`), "0"), chromedp.Click(chromedp.CSS(`#save-limits`)))
	b.wait("the override", `document.querySelector('#limits-form td.effective[data-field="max_parallel_calls"]').textContent === 'blocked' && document.querySelector('#limits-form td.source[data-field="max_parallel_calls"]').dataset.source === 'override'`, 10*time.Second)
	if code := inviteProbe(t, pbxIP, gw.addr); code != 486 {
		t.Fatalf("INVITE with max_parallel_calls 0 set in the console: %d, want 486", code)
	}
	gw.waitLog(5*time.Second, "a parallel_calls rejection", func() bool { return gw.count(decision("reject", "parallel_calls")) == 1 })
	// Parallel calls 2, and a minutes cap of 1 with the alert at 5 %:
	// the minutes used so far are past the alert.
	b.do("set parallel calls to 2, minutes to 1, alert at 5 %",
		chromedp.SetValue(chromedp.CSS(`#limits-form input[name="max_parallel_calls"]`), "2"),
		chromedp.SetValue(chromedp.CSS(`#limits-form input[name="max_monthly_minutes"]`), "1"),
		chromedp.SetValue(chromedp.CSS(`#limits-form input[name="alert_threshold_pct"]`), "5"),
		chromedp.Click(chromedp.CSS(`#save-limits`)))
	b.wait("the new overrides", `document.querySelector('#limits-form td.effective[data-field="max_parallel_calls"]').textContent === '2' && document.querySelector('#limits-form td.effective[data-field="max_monthly_minutes"]').textContent === '1'`, 10*time.Second)
	b.wait("the minutes bar at the alert colour", `document.querySelector('#tenant-usage .bar[data-cap="max_monthly_minutes"]').dataset.level === 'warn'`, 10*time.Second)
	// Two calls at once: both admitted; a third at the same time: 486.
	uac = startUAC(t, gw, 30*time.Second, "-sn", "uac", "-m", "2", "-l", "2", "-r", "10", "-d", "4000")
	b.wait("2 of 2 parallel calls, at the cap", `document.querySelector('#tenant-usage .bar[data-cap="max_parallel_calls"]').dataset.level === 'cap'`, 10*time.Second)
	// Two calls draw on the minute left: it runs out in under 30 s.
	b.wait("the minutes projection", `(() => { const p = document.querySelector('#tenant-usage .projection[data-cap="max_monthly_minutes"]'); const left = new Date(p.dataset.exhaustsAt).getTime() - Date.now(); return p.textContent.startsWith('runs out at ') && left > 0 && left <= 30000; })()`, 10*time.Second)
	b.shot("tenant")
	if code := inviteProbe(t, pbxIP, gw.addr); code != 486 {
		t.Fatalf("third INVITE with max_parallel_calls 2: %d, want 486", code)
	}
	if code := uac.wait(20 * time.Second); code != 0 {
		t.Fatalf("sipp uac (2 calls under a cap of 2) exit code %d", code)
	}
	b.do("reset to the defaults", chromedp.Click(chromedp.CSS(`#reset-limits`)))
	b.wait("the plan's value again", `document.querySelector('#limits-form td.effective[data-field="max_parallel_calls"]').textContent === '10' && document.querySelector('#limits-form td.source[data-field="max_parallel_calls"]').dataset.source === 'plan' && document.querySelector('#limits-form input[name="max_parallel_calls"]').value === ''`, 10*time.Second)

	// ---- roles: a bad one names the field, a good one is listed.
	b.do("open the roles editor", chromedp.Click(chromedp.CSS(`.tenant-page details summary`)))
	b.do("a bad role", chromedp.SetValue(chromedp.CSS(`#roles-json`), `[{"name": "reception", "max_parallel_calls": "two"}]`), chromedp.Click(chromedp.CSS(`#save-roles`)))
	b.wait("the role's field error", `document.getElementById('roles-error').textContent.includes('[0].max_parallel_calls')`, 10*time.Second)
	b.do("a role", chromedp.SetValue(chromedp.CSS(`#roles-json`), `[{"name": "reception", "max_parallel_calls": 1, "users": ["100"]}]`), chromedp.Click(chromedp.CSS(`#save-roles`)))
	b.wait("the role listed", `document.querySelector('#roles tr[data-role="reception"]').children[1].textContent === '1' && document.getElementById('roles-error').hidden`, 10*time.Second)
	var roles []map[string]any
	apiCall(t, gw, adminToken, "GET", "/v1/tenants/demo/roles", nil, 200, &roles)
	if len(roles) != 1 || roles[0]["name"] != "reception" {
		t.Fatalf("roles through the API after the console's save: %v", roles)
	}

	// ---- provisioning caps: max_users 1 refuses a second user on the
	// roles, naming it; lowering it to 0 (below the one user) is accepted
	// and keeps the user.
	b.do("max_users 1", chromedp.SetValue(chromedp.CSS(`#limits-form input[name="max_users"]`), "1"), chromedp.Click(chromedp.CSS(`#save-limits`)))
	b.wait("max_users overridden", `document.querySelector('#limits-form td.effective[data-field="max_users"]').textContent === '1' && document.querySelector('#limits-form td.source[data-field="max_users"]').dataset.source === 'override'`, 10*time.Second)
	b.do("a second user", chromedp.SetValue(chromedp.CSS(`#roles-json`), `[{"name": "reception", "max_parallel_calls": 1, "users": ["100", "101"]}]`), chromedp.Click(chromedp.CSS(`#save-roles`)))
	b.wait("the cap refusal", `document.getElementById('roles-error').textContent.includes('[0].users[1]') && document.getElementById('roles-error').textContent.includes('max_users is 1')`, 10*time.Second)
	b.do("max_users 0", chromedp.SetValue(chromedp.CSS(`#limits-form input[name="max_users"]`), "0"), chromedp.Click(chromedp.CSS(`#save-limits`)))
	b.wait("max_users 0 accepted", `document.querySelector('#limits-form td.effective[data-field="max_users"]').textContent === 'none allowed' && document.getElementById('limits-error').hidden`, 10*time.Second)
	apiCall(t, gw, adminToken, "GET", "/v1/tenants/demo/roles", nil, 200, &roles)
	if users, _ := roles[0]["users"].([]any); len(users) != 1 {
		t.Fatalf("roles after lowering max_users: %v", roles)
	}
	b.do("max_users inherit again", chromedp.Click(chromedp.CSS(`#reset-limits`)))
	b.wait("max_users from the plan", `document.querySelector('#limits-form td.effective[data-field="max_users"]').textContent === 'unlimited' && document.querySelector('#limits-form td.source[data-field="max_users"]').dataset.source === 'plan'`, 10*time.Second)

	// ---- suspend and resume.
	b.do("suspend without a reason", chromedp.Click(chromedp.CSS(`#suspend`)))
	b.wait("the reason required", `document.getElementById('suspend-error').textContent.startsWith('reason: ')`, 10*time.Second)
	b.do("suspend", chromedp.SendKeys(chromedp.CSS(`#suspend-reason`), "unpaid invoice 42"), chromedp.Click(chromedp.CSS(`#suspend`)))
	b.wait("the suspended badge", `document.querySelector('#tenant-status .badge').dataset.status === 'suspended' && document.getElementById('tenant-status').textContent.includes('unpaid invoice 42') && document.getElementById('tenant-status').textContent.includes('since ')`, 10*time.Second)
	if code := inviteProbe(t, pbxIP, gw.addr); code != 403 {
		t.Fatalf("INVITE of the tenant suspended in the console: %d, want 403", code)
	}
	b.do("back to the list", chromedp.Navigate(gw.apiURL+"/#/tenants"))
	b.wait("suspended in the list", `document.querySelector('#tenants tr[data-tenant="demo"] td.status .badge').dataset.status === 'suspended'`, 10*time.Second)
	b.clickRow("open the tenant", `#tenants a.tenant-link`)
	b.wait("the resume button", `!document.getElementById('resume').hidden`, 10*time.Second)
	b.do("resume", chromedp.Click(chromedp.CSS(`#resume`)))
	b.wait("the active badge", `document.querySelector('#tenant-status .badge').dataset.status === 'active'`, 10*time.Second)
	uac = startUAC(t, gw, 20*time.Second, "-sn", "uac", "-m", "1", "-d", "500")
	if code := uac.wait(15 * time.Second); code != 0 {
		t.Fatalf("call after the resume: sipp exit code %d", code)
	}

	// ---- the audit log shows what the console did, by the token's name.
	b.do("open the audit log", chromedp.Navigate(gw.apiURL+"/#/audit"))
	for _, action := range []string{"limits.update", "limits.reset", "tenant.suspend", "tenant.resume"} {
		b.wait("the "+action+" entry", `[...document.querySelectorAll('#audit tr[data-action=`+js(action)+`][data-tenant="demo"]')].some(r => r.textContent.includes('testbed'))`, 10*time.Second)
	}
	if got := evalJS[bool](b, `[...document.querySelectorAll('#audit tr[data-action="tenant.suspend"]')].some(r => r.textContent.includes('unpaid invoice 42'))`); !got {
		t.Fatal("the suspend entry has no reason")
	}
	// Filtered by time: entries from the future are none.
	future := time.Now().Add(time.Hour).Format("2006-01-02T15:04:05")
	// The form's fields are set and it is submitted in one evaluation, so
	// no re-render of the page can come between the steps.
	b.wait("filter by time", `(() => { const f = document.getElementById('audit-form'); f.elements.from.value = `+js(future)+`; f.requestSubmit(); return true; })()`, 10*time.Second)
	b.wait("no entries", `document.querySelectorAll('#audit tr[data-action]').length === 0`, 10*time.Second)
	b.wait("filter by tenant", `(() => { const f = document.getElementById('audit-form'); f.elements.from.value = ''; f.elements.tenant.value = 'demo'; f.requestSubmit(); return true; })()`, 10*time.Second)
	b.wait("the tenant's entries", `document.querySelectorAll('#audit tr[data-action]').length >= 4 && [...document.querySelectorAll('#audit tr[data-action]')].every(r => r.dataset.tenant === 'demo')`, 10*time.Second)
	b.shot("audit")

	// ---- events: the last 15 minutes' on opening, then a call's events
	// arrive while the page is open.
	b.do("open the events", chromedp.Navigate(gw.apiURL+"/#/events"))
	b.wait("the stream", `document.getElementById('events-conn').textContent.startsWith('live (from nats')`, 10*time.Second)
	// The last 15 minutes come first: the suspension made above.
	b.wait("the history", `!!document.querySelector('#events tr[data-type="tenant.suspended"][data-tenant="demo"]')`, 10*time.Second)
	uac = startUAC(t, gw, 20*time.Second, "-sn", "uac", "-m", "1", "-d", "500")
	if code := uac.wait(15 * time.Second); code != 0 {
		t.Fatalf("call for the events page: sipp exit code %d", code)
	}
	b.wait("call.started and call.ended", `document.querySelector('#events tr[data-type="call.started"][data-tenant="demo"]') && document.querySelector('#events tr[data-type="call.ended"][data-tenant="demo"]')`, 10*time.Second)
	b.shot("events")

	// ---- live calls: a long call listed, hung up from the console.
	uac = startUAC(t, gw, 30*time.Second, "-sn", "uac", "-m", "1", "-d", "20000")
	b.do("open the calls", chromedp.Navigate(gw.apiURL+"/#/calls"))
	b.wait("the call", `document.querySelector('#calls tr[data-tenant="demo"] button.hangup') !== null`, 10*time.Second)
	b.shot("calls")
	b.clickRow("hang up", `#calls tr[data-tenant="demo"] button.hangup`)
	b.wait("no call", `document.querySelector('#calls tr[data-tenant]') === null`, 10*time.Second)
	uac.wait(15 * time.Second) // SIPp gets the BYE; its exit code does not matter here
	gw.waitLog(5*time.Second, "the hang-up", func() bool {
		return gw.count(func(l logLine) bool { return l.str("message") == "call ended" && l.str("cause") == "operator_hangup" }) > 0
	})

	// ---- plans.
	b.do("open the plans", chromedp.Navigate(gw.apiURL+"/#/plans"))
	b.wait("the e2e plan", `document.querySelector('#plans tr[data-plan="e2e"]') && document.querySelector('#plans tr[data-plan="e2e"]').children[1].textContent === '10'`, 10*time.Second)
	b.shot("plans")

	// ---- 1,000 tenants: paging and search.
	doc := map[string]any{"plans": []any{}}
	var tenants []map[string]any
	for i := range 1000 {
		tenants = append(tenants, map[string]any{
			"name": fmt.Sprintf("t%04d", i), "plan": "e2e", "carrier": "carrier",
			"sources": []string{fmt.Sprintf("10.%d.%d.1/32", i/256, i%256)},
		})
	}
	doc["tenants"] = tenants
	apiCall(t, gw, adminToken, "POST", "/v1/apply", doc, 200, nil)
	b.do("the tenants", chromedp.Navigate(gw.apiURL+"/#/tenants"))
	b.wait("1001 tenants", `document.getElementById('tenant-count').textContent === '1001 of 1001 tenants' && document.getElementById('page-pos').textContent === 'page 1 of 41'`, 15*time.Second)
	b.wait("the usage of page 1", `document.querySelectorAll('#tenants tbody tr .bar[data-cap="max_monthly_minutes"]').length === 25`, 10*time.Second)
	b.do("next page", chromedp.Click(chromedp.CSS(`#next-page`)))
	b.wait("page 2", `document.getElementById('page-pos').textContent === 'page 2 of 41' && document.querySelector('#tenants tbody tr').dataset.tenant === 't0024'`, 10*time.Second)
	b.do("back to page 1", chromedp.Click(chromedp.CSS(`#prev-page`)))
	b.wait("page 1 with its usage", `document.getElementById('page-pos').textContent === 'page 1 of 41' && document.querySelectorAll('#tenants tbody tr .bar[data-cap="max_monthly_minutes"]').length === 25`, 10*time.Second)
	b.shot("tenants")
	b.do("search", chromedp.SendKeys(chromedp.CSS(`#tenant-search`), "t0999"))
	b.wait("one match", `document.getElementById('tenant-count').textContent === '1 of 1001 tenants' && document.querySelectorAll('#tenants tbody tr').length === 1 && document.querySelector('#tenants tbody tr').dataset.tenant === 't0999' && document.querySelector('#tenants tbody tr .bar') !== null`, 10*time.Second)

	// ---- a read token: every write control disabled, the audit log
	// refused (it needs billing).
	var tok struct {
		Token string `json:"token"`
	}
	apiCall(t, gw, adminToken, "POST", "/v1/tokens", map[string]string{"name": "viewer", "scope": "read"}, 201, &tok)
	b.do("log out", chromedp.Navigate(gw.apiURL+"/#/tenants"), chromedp.WaitVisible(chromedp.CSS(`#logout`)), chromedp.Click(chromedp.CSS(`#logout`)))
	b.wait("the login form", `document.querySelector('input[name="token"]') !== null && sessionStorage.getItem('tollgate.token') === null`, 10*time.Second)
	b.do("log in read-only", chromedp.SetValue(chromedp.CSS(`input[name="token"]`), tok.Token), chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.wait("the tenants table", `document.querySelector('#tenants a.tenant-link') !== null`, 10*time.Second)
	b.clickRow("open the tenant", `#tenants a.tenant-link`)
	b.wait("the tenant page", `document.getElementById('save-limits') !== null`, 10*time.Second)
	for _, sel := range []string{"#suspend", "#resume", "#save-limits", "#reset-limits", "#save-roles", `#limits-form input[name="max_parallel_calls"]`} {
		if !evalJS[bool](b, `document.querySelector(`+js(sel)+`).disabled`) {
			t.Errorf("%s is enabled for a read token", sel)
		}
	}
	b.do("open the audit log", chromedp.Navigate(gw.apiURL+"/#/audit"))
	b.wait("the refusal", `document.getElementById('audit-denied') !== null`, 10*time.Second)

	// ---- a settings token: limits and roles yes, suspend and hang up no.
	apiCall(t, gw, adminToken, "POST", "/v1/tokens", map[string]string{"name": "tuner", "scope": "settings"}, 201, &tok)
	b.do("log out", chromedp.Click(chromedp.CSS(`#logout`)))
	b.wait("the login form", `document.querySelector('input[name="token"]') !== null`, 10*time.Second)
	b.do("log in as settings", chromedp.SetValue(chromedp.CSS(`input[name="token"]`), tok.Token), chromedp.Click(chromedp.CSS(`#login-form button`)))
	b.wait("signed in", `document.getElementById('who').dataset.scope === 'settings'`, 10*time.Second)
	b.do("open the tenant", chromedp.Navigate(gw.apiURL+"/#/tenants/demo"))
	b.wait("the tenant page", `document.getElementById('save-limits') !== null`, 10*time.Second)
	for sel, disabled := range map[string]bool{"#suspend": true, "#resume": true, "#save-limits": false, "#reset-limits": false, "#save-roles": false,
		`#limits-form input[name="max_parallel_calls"]`: false} {
		if got := evalJS[bool](b, `document.querySelector(`+js(sel)+`).disabled`); got != disabled {
			t.Errorf("settings token: %s disabled = %v, want %v", sel, got, disabled)
		}
	}

	gw.noErrors()
	t.Logf("console browser test: %s", time.Since(start).Round(time.Millisecond))
}
