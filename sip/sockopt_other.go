//go:build !linux

package sip

import "net"

const udpBufferBytes = 8 << 20

func setUDPBuffers(c *net.UDPConn, n int) int {
	c.SetReadBuffer(n)
	c.SetWriteBuffer(n)
	return n
}
