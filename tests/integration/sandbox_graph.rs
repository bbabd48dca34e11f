//! Microsoft Graph endpoints of the sandbox (being written).
