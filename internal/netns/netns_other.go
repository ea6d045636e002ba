//go:build !linux

package netns

import "errors"

var errNotLinux = errors.New("network namespaces need Linux")

func reexec() (int, error) { return 0, errNotLinux }

func loopbackUp() error { return errNotLinux }
