// Package apache owns /apache: reading Apache httpd's state (server-status,
// configtest, modules, virtual hosts, the error log) on inventory hosts and
// reloading or restarting it with checks before and after.
package apache
