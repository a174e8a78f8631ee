function o(r){if(r<0)throw new Error(`negative price: ${r}`);return(r/100).toFixed(2)}var e=class{constructor(t){this.items=t}describe(){return this.items.map(t=>`${t.name}: ${o(t.cents)}`)}};function c(r){return new e(r).describe().join(`
`)}try{c([{name:"tea",cents:250},{name:"refund",cents:-100}])}catch(r){console.log(r.stack)}
//# sourceMappingURL=app.js.map
