package main

// runAgent runs `podwire agent`; owned by the capture work, replaced there.
func runAgent(args []string) error {
	return errNotBuilt
}
