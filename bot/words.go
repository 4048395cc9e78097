package bot

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Input bounds. A command line is something a person types; anything far
// larger is a paste gone wrong or an attack, and is refused before parsing.
const (
	MaxLineBytes = 4096
	MaxWords     = 64
)

// SplitWords splits a command line into words. Double and single quotes
// group words; chat clients' typographic quotes (“ ” ‘ ’) count as quotes
// too, because Slack and macOS turn typed quotes into them. A backslash
// escapes the next character outside single quotes.
func SplitWords(line string) ([]string, error) {
	if !utf8.ValidString(line) {
		return nil, Errorf(EINVALID, "the command is not valid UTF-8 text")
	}
	if n := len(strings.Fields(line)); n > MaxWords {
		return nil, tooManyWords(line)
	}
	if len(line) > MaxLineBytes {
		return nil, Errorf(EINVALID, "the command is %d bytes long: at most %d are accepted", len(line), MaxLineBytes)
	}
	for _, r := range line {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return nil, Errorf(EINVALID, "the command contains a control character (%U): only printable text is accepted", r)
		}
	}
	var (
		words   []string
		cur     strings.Builder
		inWord  bool
		quote   rune // closing quote we wait for, 0 outside quotes
		escaped bool
	)
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' {
				escaped = true
			} else {
				cur.WriteRune(r)
			}
		case r == '\\':
			escaped, inWord = true, true
		case r == '"' || r == '\'' || r == '“' || r == '‘' || r == '”' || r == '’':
			quote, inWord = closingQuote(r), true
		case unicode.IsSpace(r):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
				if len(words) > MaxWords {
					return nil, tooManyWords(line)
				}
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, Errorf(EINVALID, "unterminated quote: close the %c", quote)
	}
	if escaped {
		return nil, Errorf(EINVALID, "the command ends with a lone backslash")
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) > MaxWords {
		return nil, tooManyWords(line)
	}
	return words, nil
}

func tooManyWords(line string) error {
	return Errorf(EINVALID, "too many arguments (%d): at most %d words are accepted", len(strings.Fields(line)), MaxWords)
}

func closingQuote(open rune) rune {
	switch open {
	case '“', '”':
		return '”'
	case '‘', '’':
		return '’'
	}
	return open
}

// FlagSpec says which short flags a command takes, in the style of nc:
// Bools are single letters that may be combined (-zuv), Values take an
// argument (-w 3 or -w3).
type FlagSpec struct {
	Bools  string
	Values string
}

// Flags is the result of ParseFlags.
type Flags struct {
	set    map[rune]bool
	values map[rune]string
	Args   []string // words that are not flags, in order
}

// Has reports whether the flag letter was given.
func (f Flags) Has(letter rune) bool { return f.set[letter] }

// Value returns the argument of a value flag and whether it was given.
func (f Flags) Value(letter rune) (string, bool) {
	v, ok := f.values[letter]
	return v, ok
}

// ParseFlags separates nc-style short flags from the other words. A word
// "--" ends the flags. A word that starts with '-' followed by a digit that
// is not a flag letter (-4 and -6 are, for nc) is an argument, so a negative
// number gets its own error later.
func ParseFlags(words []string, spec FlagSpec) (Flags, error) {
	f := Flags{set: map[rune]bool{}, values: map[rune]string{}}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			f.Args = append(f.Args, words[i+1:]...)
			break
		}
		if len(w) < 2 || w[0] != '-' || (w[1] >= '0' && w[1] <= '9' && !spec.has(rune(w[1]))) {
			f.Args = append(f.Args, w)
			continue
		}
		if strings.HasPrefix(w, "--") {
			return f, Errorf(EINVALID, "unknown option %q: accepted flags are %s", w, spec.describe())
		}
		letters := []rune(w[1:])
		for j := 0; j < len(letters); j++ {
			l := letters[j]
			switch {
			case strings.ContainsRune(spec.Bools, l):
				f.set[l] = true
			case strings.ContainsRune(spec.Values, l):
				f.set[l] = true
				if rest := string(letters[j+1:]); rest != "" {
					f.values[l] = rest
				} else if i+1 < len(words) {
					i++
					f.values[l] = words[i]
				} else {
					return f, Errorf(EINVALID, "flag -%c needs a value", l)
				}
				j = len(letters)
			default:
				return f, Errorf(EINVALID, "unknown flag -%c in %q: accepted flags are %s", l, w, spec.describe())
			}
		}
	}
	return f, nil
}

func (s FlagSpec) has(l rune) bool {
	return strings.ContainsRune(s.Bools, l) || strings.ContainsRune(s.Values, l)
}

func (s FlagSpec) describe() string {
	var parts []string
	for _, l := range s.Bools {
		parts = append(parts, "-"+string(l))
	}
	for _, l := range s.Values {
		parts = append(parts, fmt.Sprintf("-%c VALUE", l))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
