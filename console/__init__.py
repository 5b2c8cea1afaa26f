"""The duty officers' web console: a live map of work orders, their actions, an overview."""
