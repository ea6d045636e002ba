//go:build linux

package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"unsafe"
)

// reexec runs this test binary again, with the same arguments, in a new
// network namespace, and returns its exit code. It returns an error only
// when the child could not be started, that is when no namespace can be
// created.
func reexec() (int, error) {
	if os.Getenv(envTestDeny) != "" {
		return 0, fmt.Errorf("clone(CLONE_NEWNET): %w (forced by %s)", syscall.EPERM, envTestDeny)
	}
	parentNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return 0, fmt.Errorf("read /proc/self/ns/net: %w", err)
	}
	env := setEnv(os.Environ(), Env, envIsolated)
	env = setEnv(env, envParentNS, parentNS)

	// Pdeathsig fires when the thread that started the child ends, not the
	// process: keep this goroutine on its thread for good (from here on this
	// process only waits for the child).
	runtime.LockOSThread()

	attempts := []*syscall.SysProcAttr{{
		Cloneflags: syscall.CLONE_NEWNET,
		Pdeathsig:  syscall.SIGKILL,
	}}
	if uid, gid := os.Geteuid(), os.Getegid(); uid != 0 {
		// Not root: a user namespace of our own grants the capabilities a
		// new network namespace needs, where the kernel allows it.
		attempts = append(attempts, &syscall.SysProcAttr{
			Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
			Pdeathsig:   syscall.SIGKILL,
		})
	}

	// Take the signals before the child exists, so that none is lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	defer signal.Stop(sigs)

	var errs []error
	for _, attr := range attempts {
		cmd := &exec.Cmd{
			Path:        "/proc/self/exe",
			Args:        os.Args,
			Env:         env,
			Stdin:       os.Stdin,
			Stdout:      os.Stdout,
			Stderr:      os.Stderr,
			SysProcAttr: attr,
		}
		if err := cmd.Start(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", describe(attr), err))
			continue
		}
		done := make(chan struct{})
		go func() {
			for {
				select {
				case s := <-sigs:
					cmd.Process.Signal(s)
				case <-done:
					return
				}
			}
		}()
		err := cmd.Wait()
		close(done)
		return exitCode(err), nil
	}
	return 0, errors.Join(errs...)
}

func describe(attr *syscall.SysProcAttr) string {
	if attr.Cloneflags&syscall.CLONE_NEWUSER != 0 {
		return "clone(CLONE_NEWUSER|CLONE_NEWNET)"
	}
	return "clone(CLONE_NEWNET)"
}

// exitCode turns the child's end into this process's exit code.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			fmt.Fprintf(os.Stderr, "netns: the isolated test process was killed by %v\n", ws.Signal())
			return 128 + int(ws.Signal())
		}
		if code := ee.ExitCode(); code > 0 {
			return code
		}
	}
	fmt.Fprintf(os.Stderr, "netns: waiting for the isolated test process: %v\n", err)
	return 1
}

func setEnv(env []string, key, value string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+value)
}

// ifreqFlags is struct ifreq with the ifr_flags member of its union.
type ifreqFlags struct {
	name  [syscall.IFNAMSIZ]byte
	flags uint16
	_     [22]byte // the rest of the 24-byte union
}

// loopbackUp sets lo up, as "ip link set lo up" does. The kernel then gives
// it 127.0.0.1/8 (the whole of 127.0.0.0/8 is local) and ::1.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer syscall.Close(fd)
	var req ifreqFlags
	copy(req.name[:], "lo")
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&req))); e != 0 {
		return fmt.Errorf("SIOCGIFFLAGS lo: %w", e)
	}
	if req.flags&syscall.IFF_UP != 0 {
		return nil
	}
	req.flags |= syscall.IFF_UP
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&req))); e != 0 {
		return fmt.Errorf("SIOCSIFFLAGS lo up: %w", e)
	}
	return nil
}
