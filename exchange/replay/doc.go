// Package replay replays exchange captures through the feed adapters into a
// snapshot collector: the "gather feed replay" command.
package replay
