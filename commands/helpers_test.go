package commands

import (
	"net"
	"strconv"
	"time"
)

// probeFreePort finds a TCP port nothing listens on right now.
func probeFreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return strconv.Itoa(port), ln.Close()
}

func dialSend(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}
