//go:build !linux

package floodgen

import "net"

// setBuffers asks for n-byte socket buffers (the kernel may cap them).
func setBuffers(c *net.UDPConn, n int) {
	c.SetWriteBuffer(n)
	c.SetReadBuffer(n)
}
