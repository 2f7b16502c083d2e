package http2

// maxDetectFrame is the largest frame DetectFrames accepts: the default
// SETTINGS_MAX_FRAME_SIZE, which almost every peer keeps.
const maxDetectFrame = 16384

// DetectFrames says whether b, the first bytes seen of a connection picked
// up mid-stream, starts with HTTP/2 frames: frame headers that are valid
// for their type (length, flags, stream id) and chain, either two of them
// in a row or frames that end exactly where b ends. It is for connections
// whose start was missed; Detect is for those whose start was seen.
func DetectFrames(b []byte) Verdict {
	off, frames := 0, 0
	for {
		switch rest := len(b) - off; {
		case rest == 0 && frames > 0:
			return Yes // frames end exactly where the bytes do
		case rest < 9:
			return NeedMore
		}
		h := b[off : off+9]
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		if !plausibleFrame(n, h[3], h[4], uint32(h[5])<<24|uint32(h[6])<<16|uint32(h[7])<<8|uint32(h[8])) {
			return No
		}
		if frames++; frames == 2 {
			return Yes
		}
		if off += 9 + n; off > len(b) {
			return NeedMore
		}
	}
}

// plausibleFrame checks a frame header as its sender would have written it.
func plausibleFrame(n int, typ, flags uint8, sid uint32) bool {
	if n > maxDetectFrame || sid>>31 != 0 {
		return false
	}
	var okFlags uint8
	streamZero := false
	switch typ {
	case frameData:
		okFlags = flagEndStream | flagPadded
	case frameHeaders:
		okFlags = flagEndStream | flagEndHeaders | flagPadded | flagPriority
	case framePriority:
		if n != 5 {
			return false
		}
	case frameRSTStream:
		if n != 4 {
			return false
		}
	case frameSettings:
		okFlags, streamZero = flagAck, true
		if n%6 != 0 {
			return false
		}
	case framePushPromise:
		okFlags = flagEndHeaders | flagPadded
	case framePing:
		okFlags, streamZero = flagAck, true
		if n != 8 {
			return false
		}
	case frameGoAway:
		streamZero = true
		if n < 8 {
			return false
		}
	case frameWindowUpdate:
		if n != 4 {
			return false
		}
		return flags == 0
	case frameContinuation:
		okFlags = flagEndHeaders
	default:
		return false
	}
	if flags&^okFlags != 0 {
		return false
	}
	return (sid == 0) == streamZero
}
