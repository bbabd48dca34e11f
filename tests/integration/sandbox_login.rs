//! Entra ID login endpoints of the sandbox (being written).
