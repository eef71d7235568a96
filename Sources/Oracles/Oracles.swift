// The Oracles module.
