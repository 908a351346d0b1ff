// Package binance decodes Binance's spot and USDⓈ-M futures order book
// messages: the diff depth stream (depthUpdate), the REST depth image and
// the book ticker stream.
package binance
