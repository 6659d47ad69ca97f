"""RationalRewards Studio core: the critique protocol, critic and generator backends, and the loop."""
