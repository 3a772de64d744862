package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aioconn/aioconn/config"
	ctls "github.com/aioconn/aioconn/tls"
)

// runCreateCertificates is `create_certificates [dirpath]`: exactly one extra argument is the
// target directory; none or several use the default directory, as the original does.
func runCreateCertificates(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
		io.WriteString(stdout, config.CreateCertificatesHelp(ctls.DefaultBaseDir()))
		return 0
	}
	dir := ctls.DefaultBaseDir()
	if len(args) == 1 {
		dir = config.FullPath(args[0])
	}
	fmt.Fprintln(stderr, "Starting create_certificates")
	err := ctls.CreateCertificates(dir, stderr)
	var ne *ctls.NotEmptyError
	if errors.As(err, &ne) {
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "aioconn: %v\n", err)
		return 1
	}
	return 0
}
