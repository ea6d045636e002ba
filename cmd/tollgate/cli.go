package main

// The operator CLI: subcommands that talk to a running gateway's admin API
// (see CLI.md). Everything goes through runCLI so tests run it in-process.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/api"
)

// cliUsage documents the admin commands; `tollgate help` prints it after
// the usage of serve, check and version.
const cliUsage = `
Admin commands (talk to a running gateway's admin API):
  tollgate plans [list] | plans get NAME | plans delete NAME
  tollgate tenants [list] | tenants get NAME | tenants delete NAME
  tollgate limits TENANT                    overrides and effective limits
  tollgate limits set TENANT KEY=VALUE...   set overrides: VALUE null or inherit
                                            clears one, unlimited is -1, money
                                            as a decimal (monthly_spend_limit=250.5),
                                            classes as destinations.CLASS=true|false
  tollgate limits reset TENANT              reset to defaults: the overrides become
                                            the gateway's tenant_defaults
  tollgate roles TENANT                     per-user caps of a tenant
  tollgate usage TENANT                     caps, per-day and per-user usage this month
  tollgate calls [--tenant T]               active calls
  tollgate calls hangup ID                  tear down a call (ID from calls)
  tollgate suspend TENANT --reason TEXT     reject and cut a tenant's calls
  tollgate resume TENANT [--reason TEXT]
  tollgate blocked                          sources blocked by flood protection
  tollgate unblock IP                       lift the block of a source address
  tollgate cluster [status] [--tenant T]    cluster nodes, last renewals and the
                                            leases each holds per tenant and cap
  tollgate cluster release NODE             give back the leases of a node that
                                            will not come back (audited)
  tollgate audit [--tenant T] [--since 24h | --from RFC3339] [--to RFC3339] [--limit N]
  tollgate apply -f FILE.yaml [--dry-run]   create or update the plans and tenants
                                            of FILE (the config file's shapes)
  tollgate tokens [list]
  tollgate tokens create NAME --scope admin|settings|billing|read
                                            prints the secret (shown only once)
  tollgate tokens delete NAME
  tollgate events [--tenant T] [--type X] [--since 1h] [--follow]
                                            the usage events on NATS, one line each
                                            (flags: tollgate events -h)

Flags of every admin command (before the command, or before or after its arguments):
  --api URL        admin API base URL (env TOLLGATE_API, default ` + defaultAPI + `)
  --token TOKEN    bearer token (env TOLLGATE_TOKEN; prefer the env var)
  -o table|json    output: aligned tables (default) or the API's JSON, indented

Exit codes:
  0  success
  1  server error (5xx) or unexpected failure
  2  usage error: unknown command, bad flags or arguments, unreadable file
  3  not found (404): unknown plan, tenant, role, call, token or cluster
     node, or a source that is not blocked
  4  authentication or authorization failed (401, 403): missing or bad
     token, or a token whose scope does not allow the operation
  5  invalid request or conflict (400, 409), including an apply file that
     does not decode (unknown field, bad value)
  6  admin API unreachable (connection refused, timeout, DNS)
`

// defaultAPI is the admin API base URL when neither --api nor TOLLGATE_API
// is set.
const defaultAPI = "http://127.0.0.1:8080"

// requestTimeout bounds one CLI request.
const requestTimeout = 30 * time.Second

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 3
	exitAuth        = 4
	exitInvalid     = 5
	exitUnreachable = 6
)

// cliNow is the clock of --since (a test hook).
var cliNow = time.Now

// cliCommand is one admin command.
type cliCommand struct {
	usage string // its usage lines
	run   func(c *cli, args []string) error
}

// cliCommands are the admin commands by name.
var cliCommands = map[string]cliCommand{
	"plans":   {`tollgate plans [list] | plans get NAME | plans delete NAME`, cmdPlans},
	"tenants": {`tollgate tenants [list] | tenants get NAME | tenants delete NAME`, cmdTenants},
	"limits": {`tollgate limits TENANT
  tollgate limits set TENANT KEY=VALUE...
  tollgate limits reset TENANT

KEY is a limit (max_parallel_calls, max_parallel_inbound, max_parallel_outbound,
max_calls_per_second, cps_burst, max_monthly_minutes, monthly_spend_limit,
alert_threshold_pct, auto_suspend, max_dids, max_users) or destinations.CLASS. VALUE null or inherit
clears the override (the plan's value applies again), unlimited means -1.

reset is "Reset to Defaults": the tenant's overrides are replaced by the
gateway's tenant_defaults (config file); a limit tenant_defaults leaves unset
inherits the plan. With no tenant_defaults it removes every override.`, cmdLimits},
	"roles":   {`tollgate roles TENANT`, cmdRoles},
	"usage":   {`tollgate usage TENANT`, cmdUsage},
	"calls":   {`tollgate calls [--tenant T] | calls hangup ID`, cmdCalls},
	"suspend": {`tollgate suspend TENANT --reason TEXT`, cmdSuspend},
	"resume":  {`tollgate resume TENANT [--reason TEXT]`, cmdResume},
	"blocked": {`tollgate blocked`, cmdBlocked},
	"unblock": {`tollgate unblock IP`, cmdUnblock},
	"cluster": {`tollgate cluster [status] [--tenant T]
  tollgate cluster release NODE

release refuses a node whose heartbeat is fresh (exit 5): releasing a live
node's leases would let the cluster exceed its caps.`, cmdCluster},
	"audit": {`tollgate audit [--tenant T] [--since 24h | --from RFC3339] [--to RFC3339] [--limit N]`, cmdAudit},
	"apply": {`tollgate apply -f FILE.yaml [--dry-run]`, cmdApply},
	"tokens": {`tollgate tokens [list]
  tollgate tokens create NAME --scope admin|settings|billing|read
  tollgate tokens delete NAME`, cmdTokens},
	"events": {eventsUsage, cmdEvents},
}

// isCLICommand reports whether name is an admin command (for main's
// dispatch).
func isCLICommand(name string) bool {
	_, ok := cliCommands[name]
	return ok
}

// cli is the state of one admin command run.
type cli struct {
	name           string
	stdout, stderr io.Writer
	env            func(string) string
	fs             *flag.FlagSet
	apiURL, token  string
	output         string
	ctx            context.Context
	client         *api.Client
}

// usageError is a bad invocation: exit 2. quiet leaves out the usage line
// (an unreadable file).
type usageError struct {
	msg   string
	quiet bool
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// invalidError is invalid input found before any request (a bad apply
// file): exit 5.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

// hintError adds a hint (e.g. the line of the apply file) to an error's
// message.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() + " " + e.hint }
func (e *hintError) Unwrap() error { return e.err }

// globalFlags are the flags every admin command takes, by name (without
// dashes), and whether they take a value.
var globalFlags = map[string]bool{"api": true, "token": true, "o": true}

// hoistGlobalFlags moves the global flags given before the command
// (`tollgate --token T -o json tenants`) to just after it, where the
// command's flag parsing takes them. Anything else before the command is
// left in place (and reported as an unknown command).
func hoistGlobalFlags(args []string) []string {
	var flags []string
	i := 0
	for i < len(args) {
		a := args[i]
		if len(a) < 2 || a[0] != '-' || a == "--" {
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !globalFlags[name] || strings.HasPrefix(a, "---") {
			break
		}
		flags = append(flags, a)
		i++
		if !hasValue && i < len(args) {
			flags = append(flags, args[i])
			i++
		}
	}
	if len(flags) == 0 || i >= len(args) {
		return args
	}
	out := make([]string, 0, len(args))
	out = append(out, args[i])
	out = append(out, flags...)
	return append(out, args[i+1:]...)
}

// runCLI runs the admin command args[0] with its arguments and returns the
// exit code; the global flags may come before the command. env reads the
// environment (os.Getenv).
func runCLI(args []string, stdout, stderr io.Writer, env func(string) string) int {
	if env == nil {
		env = func(string) string { return "" }
	}
	args = hoistGlobalFlags(args)
	if len(args) == 0 {
		fmt.Fprint(stderr, strings.TrimPrefix(cliUsage, "\n"))
		return exitUsage
	}
	cmd, ok := cliCommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tollgate: unknown command %q\n%s", args[0], cliUsage)
		return exitUsage
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by report
	fs.Usage = func() {}
	c := &cli{name: args[0], stdout: stdout, stderr: stderr, env: env, fs: fs, ctx: context.Background()}
	fs.StringVar(&c.apiURL, "api", "", "admin API base URL (env TOLLGATE_API, default "+defaultAPI+")")
	fs.StringVar(&c.token, "token", "", "bearer token (env TOLLGATE_TOKEN)")
	fs.StringVar(&c.output, "o", "table", "output format: table or json")
	err := cmd.run(c, args[1:])
	return c.report(err, cmd.usage)
}

// parse parses the flags (anywhere among the arguments; "--" ends them),
// checks the common ones, builds the client and returns the positional
// arguments.
func (c *cli) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{msg: err.Error()}
		}
		rest := c.fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if c.output != "table" && c.output != "json" {
		return nil, usagef("-o must be table or json, got %q", c.output)
	}
	base := firstNonEmpty(c.apiURL, c.env("TOLLGATE_API"), defaultAPI)
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("invalid API URL %q: want http://host:port or https://host:port", base)
	}
	token := firstNonEmpty(c.token, c.env("TOLLGATE_TOKEN"))
	c.client = api.NewClient(base, token, &http.Client{Timeout: requestTimeout})
	return pos, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// nargs checks the number of positional arguments.
func nargs(pos []string, n int, what string) error {
	if len(pos) < n {
		return usagef("missing %s", what)
	}
	if len(pos) > n {
		return usagef("unexpected argument %q", pos[n])
	}
	return nil
}

// report prints err (if any) and returns the exit code.
func (c *cli) report(err error, usage string) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(c.stdout, "Usage:\n  %s\n\nFlags (before or after the arguments):\n", usage)
		c.fs.SetOutput(c.stdout)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
		fmt.Fprint(c.stdout, "\nRun `tollgate help` for every command and the exit codes.\n")
		return exitOK
	}
	var (
		ue   *usageError
		ie   *invalidError
		ae   *api.APIError
		hint string
	)
	var he *hintError
	if errors.As(err, &he) {
		hint = " " + he.hint
	}
	switch {
	case errors.As(err, &ue) && ue.quiet:
		fmt.Fprintf(c.stderr, "tollgate: %s: %s\n", c.name, ue.msg)
		return exitUsage
	case ue != nil:
		fmt.Fprintf(c.stderr, "tollgate: %s: %s\nusage: %s\n", c.name, ue.msg, usage)
		return exitUsage
	case errors.As(err, &ie):
		fmt.Fprintf(c.stderr, "tollgate: %s\n", ie.msg)
		return exitInvalid
	case errors.As(err, &ae):
		fmt.Fprintf(c.stderr, "tollgate: %s%s\n", apiErrorMessage(ae), hint)
		return apiExitCode(ae)
	case errors.Is(err, api.ErrUnreachable):
		fmt.Fprintf(c.stderr, "tollgate: cannot reach the admin API at %s (set --api or TOLLGATE_API): %s\n",
			c.client.BaseURL(), unreachableCause(err))
		return exitUnreachable
	}
	var ce interface{ ExitCode() int }
	if errors.As(err, &ce) {
		fmt.Fprintf(c.stderr, "tollgate: %s\n", err)
		return ce.ExitCode()
	}
	fmt.Fprintf(c.stderr, "tollgate: %s\n", err)
	return exitFailure
}

// unreachableCause is the innermost cause of a transport error
// ("connection refused"), without the URL the message already names.
func unreachableCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timeout"
		}
		return ue.Err.Error()
	}
	return strings.TrimPrefix(err.Error(), api.ErrUnreachable.Error()+": ")
}

// apiErrorMessage phrases an API error for the operator.
func apiErrorMessage(e *api.APIError) string {
	msg := e.Message
	// prefix names the kind of error unless the message already does
	// (`plan "x" is used by tenant "y": conflict`).
	prefix := func(p string) string {
		if strings.Contains(strings.ToLower(msg), p) {
			return msg
		}
		return p + ": " + msg
	}
	switch {
	case e.Status == http.StatusBadRequest || e.Code == "invalid":
		if e.Field != "" {
			return "invalid " + e.Field + ": " + msg
		}
		return prefix("invalid request")
	case e.Status == http.StatusUnauthorized:
		return prefix("unauthorized") + " (set --token or TOLLGATE_TOKEN)"
	case e.Status == http.StatusForbidden:
		return prefix("forbidden")
	case e.Status == http.StatusConflict:
		return prefix("conflict")
	case e.Status == http.StatusNotFound:
		return msg
	}
	return fmt.Sprintf("%s (HTTP %d %s)", msg, e.Status, e.Code)
}

// apiExitCode maps an API error to the exit code.
func apiExitCode(e *api.APIError) int {
	switch e.Status {
	case http.StatusNotFound:
		return exitNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return exitAuth
	case http.StatusBadRequest, http.StatusConflict, http.StatusUnprocessableEntity:
		return exitInvalid
	}
	return exitFailure
}

// ---- output ----

// json prints v indented (the -o json output).
func (c *cli) json(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table is an aligned table: columns padded by 2 spaces, header in caps.
type table struct {
	tw *tabwriter.Writer
}

func (c *cli) table(header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)}
	if len(header) > 0 {
		for i := range header {
			header[i] = strings.ToUpper(header[i])
		}
		t.row(header...)
	}
	return t
}

// row adds a row; empty cells print as "-" so columns stay readable.
func (t *table) row(cells ...string) {
	for i, s := range cells {
		if s == "" {
			s = "-"
		}
		// A tab or newline inside a cell would break the alignment.
		s = strings.NewReplacer("\t", " ", "\n", " ").Replace(s)
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, s)
	}
	fmt.Fprint(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }

// ts formats a time in UTC RFC 3339.
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
