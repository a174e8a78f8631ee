import { formatPrice } from "./price.js";

export class Cart {
  constructor(items) {
    this.items = items;
  }

  describe() {
    return this.items.map((item) => `${item.name}: ${formatPrice(item.cents)}`); // MARK:map
  }
}
