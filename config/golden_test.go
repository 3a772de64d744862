package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readGolden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("golden %s: %v", name, err)
	}
	return string(b)
}

func TestGoldenCLITexts(t *testing.T) {
	cases := []struct{ name, got string }{
		{"print_config_templates_1.0.33.txt", PrintConfigTemplates("/tmp/aioconnectors")},
		{"help_1.0.33.txt", HelpText},
		{"help_noarg_1.0.33.txt", HelpText},
		{"version_1.0.33.txt", VersionText},
		{"unknown_foo_1.0.33.txt", UnknownCommandLine("foo") + "\n"},
		{"create_certificates_help_1.0.33.txt", CreateCertificatesHelp("/tmp/aioconnectors")},
	}
	for _, c := range ConfigCommands {
		cases = append(cases,
			struct{ name, got string }{"usage_" + c + "_noarg_1.0.33.txt", UsageLine(c) + "\n"},
			struct{ name, got string }{"usage_" + c + "_help_1.0.33.txt", UsageLine(c) + "\n"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := readGolden(t, c.name)
			if c.got != want {
				t.Errorf("mismatch\n got: %q\nwant: %q", c.got, want)
			}
		})
	}
}

// The directory is JSON-escaped as Python's json.dumps(ensure_ascii=True) would.
func TestPrintConfigTemplatesOtherDir(t *testing.T) {
	out := PrintConfigTemplates("/home/\u00e9t\u00e9/a\"b\U0001F600")
	want := `"connector_files_dirpath": "/home/\u00e9t\u00e9/a\"b\ud83d\ude00",`
	if !strings.Contains(out, want) {
		t.Errorf("missing %s in\n%s", want, out)
	}
}
