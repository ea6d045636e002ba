package floodgen

import (
	"net"
	"syscall"
)

// setBuffers asks for n-byte socket buffers, past net.core.rmem_max when
// the process may (root: SO_RCVBUFFORCE), so that no response is lost in
// the flooder's own socket.
func setBuffers(c *net.UDPConn, n int) {
	c.SetWriteBuffer(n)
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	raw.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n) != nil {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}
	})
}
