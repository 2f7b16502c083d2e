//go:build !linux

package main

import "os"

// isTerminal reports whether f is a character device, a fair guess at a
// terminal where no ioctl is at hand.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// terminalWidth returns 0: unknown.
func terminalWidth(*os.File) int { return 0 }
