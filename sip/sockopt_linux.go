package sip

import (
	"net"
	"syscall"
)

// udpBufferBytes is the receive and send buffer asked for on UDP listeners.
const udpBufferBytes = 8 << 20

// setUDPBuffers sizes a UDP socket's buffers. As root SO_RCVBUFFORCE goes
// past net.core.rmem_max; otherwise the kernel caps the request. It returns
// the receive buffer size obtained (the kernel reports double the request).
func setUDPBuffers(c *net.UDPConn, n int) int {
	c.SetWriteBuffer(n)
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	got := 0
	raw.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n) != nil {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}
		got, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		got /= 2
	})
	return got
}
