"""The field-selection benchmark's handlers: Transfers into balances, and optionally a block handler."""
