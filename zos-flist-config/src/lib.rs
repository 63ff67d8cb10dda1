//! Parser for the flist configuration repository (`<org>/<repo>/<branch>.yaml`).
