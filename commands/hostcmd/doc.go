// Package hostcmd is the skeleton of the commands that act on inventory
// hosts (/apache, /relayd): the subcommand table, choosing the host or
// group a request names (or the only one the asker may act on), reading
// hosts in parallel, running a command's fixed argv on one host, and
// rolling a change across a group (a canary, then batches, stopping at the
// first failure with the hosts changed and the hosts not touched). A host
// command writes what differs: its words, what it runs, and its replies.
package hostcmd
