"""Publishing to the Hub: model cards, model, Space and metric uploads."""
