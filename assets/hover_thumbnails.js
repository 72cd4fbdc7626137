// Hover thumbnails for the layer explorer's t-SNE chart (a Streamlit custom component v2).
//
// Plotly's own hover labels cannot show images, so this component listens to the
// plotly_hover events of the chart drawn just before it and shows the input behind the
// hovered point in a small floating card. Selection (click, box, lasso) stays with
// st.plotly_chart; nothing is sent back to Python.
//
// data: {thumbnails: {group: {row: "data:image/png;base64,..."}}}; a point's customdata
// is [group, step, row, class label] (app/components.py, embedding_panels).

const CARD_PX = 96;
const GAP_PX = 12;

function chartBefore(host) {
  const container = host.closest('[data-testid="stElementContainer"]');
  const previous = container && container.previousElementSibling;
  return previous ? previous.querySelector(".js-plotly-plot") : null;
}

function makeCard() {
  const card = document.createElement("div");
  card.className = "ladis-hover-thumbnail";
  card.setAttribute("data-testid", "ladisHoverThumbnail");
  Object.assign(card.style, {
    position: "fixed", display: "none", zIndex: "1000", pointerEvents: "none",
    background: "white", border: "1px solid #d0d7de", borderRadius: "6px",
    padding: "4px", boxShadow: "0 2px 8px rgba(0, 0, 0, 0.18)",
    font: "12px 'Source Sans', sans-serif", color: "#31333F", textAlign: "center",
  });
  const image = document.createElement("img");
  image.width = CARD_PX;
  image.height = CARD_PX;
  image.alt = "input of the hovered point";
  image.style.imageRendering = "pixelated";
  image.style.display = "block";
  const caption = document.createElement("div");
  card.append(image, caption);
  document.body.appendChild(card);
  return { card, image, caption };
}

export default function (component) {
  const { data, parentElement } = component;
  const thumbnails = (data && data.thumbnails) || {};
  const host = parentElement.host || parentElement;
  const { card, image, caption } = makeCard();
  let chart = null;

  const hide = () => { card.style.display = "none"; };
  const show = (event) => {
    const point = event && event.points && event.points[0];
    const [group, step, row] = (point && point.customdata) || [];
    const source = (thumbnails[group] || {})[row];
    if (!source) { hide(); return; }
    image.src = source;
    caption.textContent = `${group === "reference" ? "reference step" : "step"} ${step}`;
    // plotly draws its own label to the right of the point: put the card on the left,
    // flipping to the right only when the window edge is too close
    card.style.display = "block";
    const mouse = event.event || {};
    const width = card.offsetWidth;
    const height = card.offsetHeight;
    const left = (mouse.clientX || 0) - width - GAP_PX;
    card.style.left = `${left < 4 ? (mouse.clientX || 0) + GAP_PX : left}px`;
    card.style.top = `${Math.min(window.innerHeight - height - 4, Math.max(4, (mouse.clientY || 0) - height / 2))}px`;
  };
  // the chart may be drawn after this component, and is replaced when it is redrawn
  const attach = () => {
    const found = chartBefore(host);
    if (!found || found === chart || typeof found.on !== "function") return;
    chart = found;
    chart.on("plotly_hover", show);
    chart.on("plotly_unhover", hide);
  };
  attach();
  const timer = setInterval(attach, 250);

  return () => {
    clearInterval(timer);
    if (chart && typeof chart.removeListener === "function") {
      chart.removeListener("plotly_hover", show);
      chart.removeListener("plotly_unhover", hide);
    }
    card.remove();
  };
}
