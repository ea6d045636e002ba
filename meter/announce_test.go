package meter

import (
	"testing"
	"time"
)

func TestBuiltInAnnouncementIsSITThenPrompt(t *testing.T) {
	a, err := NewAnnouncement(nil)
	if err != nil {
		t.Fatal(err)
	}
	prompt, _ := ParseWAV(defaultPrompt)
	want := 928*time.Millisecond + sitGap + time.Duration(len(prompt))*time.Second/8000
	if d := a.Duration() - want; d < 0 || d >= 20*time.Millisecond {
		t.Fatalf("announcement lasts %v, want %v (SIT, gap, prompt) rounded up to a frame", a.Duration(), want)
	}
	for _, pt := range []uint8{PCMU, PCMA} {
		for i, f := range a.frames[pt] {
			if len(f) != frameSamples {
				t.Fatalf("pt %d frame %d has %d bytes, want 160", pt, i, len(f))
			}
		}
	}
	if len(SIT()) != (274+274+380)*8 {
		t.Fatalf("SIT has %d samples", len(SIT()))
	}
}

func TestParseWAVNamesWhatIsWrong(t *testing.T) {
	for name, b := range map[string][]byte{
		"not riff": []byte("hello world, not a wav"),
		"stereo":   wav(2, 8000, 16),
		"16 kHz":   wav(1, 16000, 16),
		"8-bit":    wav(1, 8000, 8),
	} {
		if _, err := ParseWAV(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if s, err := ParseWAV(wav(1, 8000, 16)); err != nil || len(s) != 4 {
		t.Fatalf("a good WAV: %d samples, %v", len(s), err)
	}
}

// wav is a minimal RIFF WAV with four samples.
func wav(channels, rate, bits int) []byte {
	le16 := func(v int) []byte { return []byte{byte(v), byte(v >> 8)} }
	le32 := func(v int) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	b := []byte("RIFF")
	b = append(b, le32(36+8)...)
	b = append(b, "WAVEfmt "...)
	b = append(b, le32(16)...)
	b = append(b, le16(1)...)
	b = append(b, le16(channels)...)
	b = append(b, le32(rate)...)
	b = append(b, le32(rate*channels*bits/8)...)
	b = append(b, le16(channels*bits/8)...)
	b = append(b, le16(bits)...)
	b = append(b, "data"...)
	b = append(b, le32(8)...)
	return append(b, make([]byte, 8)...)
}
