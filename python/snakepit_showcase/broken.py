"""An adapter module that cannot be imported, to test start-up failures."""

raise ImportError("showcase: this adapter is broken on purpose")
