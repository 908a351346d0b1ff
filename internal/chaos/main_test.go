package chaos_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/gather-go/gather/internal/chaos"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(chaos.RoleEnv); role != "" {
		os.Exit(chaos.RunRole(role))
	}
	goleak.VerifyTestMain(m)
}
