//! The zos-build engine.
