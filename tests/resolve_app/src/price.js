export function formatPrice(cents) {
  if (cents < 0) {
    throw new Error(`negative price: ${cents}`); // MARK:throw
  }
  return (cents / 100).toFixed(2);
}
