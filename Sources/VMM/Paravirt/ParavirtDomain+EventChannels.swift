/// `event_channel_op`: event channels, the shared info page's bitmaps and upcall delivery.
extension ParavirtDomain {
  func registerEventChannelHypercalls(on dispatcher: HypercallDispatcher) {}

  /// Makes guest frame `frame` the shared info page (`memory_op(add_to_physmap)` with the
  /// shared-info space, and the PV domain builder).
  func placeSharedInfo(frame: UInt64) throws(HypercallFailure) {
    throw HypercallFailure(.notImplemented)
  }
}
