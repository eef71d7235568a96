/// `event_channel_op`: event channels, the shared info page's bitmaps and upcall delivery.
extension ParavirtDomain {
  func registerEventChannelHypercalls(on dispatcher: HypercallDispatcher) {}
}
