"""Teams played locally: the channel's tokens and keys, the Bot Connector, inbound activities."""
